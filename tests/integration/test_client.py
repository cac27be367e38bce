"""The client commands against a real running peer, through its control socket."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from lanspread_core.errors import LanspreadError
from lanspread_core.events import Event, LibraryChanged, OpKind, OpProgress, Ready
from lanspread_core.ipc.client import NoRunningPeer, PeerCommandError, connect
from lanspread_core.ipc.server import serve_control_socket
from lanspread_core.library.statedir import StateDir
from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD, invoke, run_cli

ARGS = ["--discovery", "static", "--listen", "127.0.0.1:0"]


class ConsolePeer:
    """``lanspread run`` (the console front-end) with stdout to a pipe."""

    def __init__(self, home: Path, catalog: Path) -> None:
        self.home = home
        self.state = home / "state"
        self.socket = self.state / "control.sock"
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
        self.proc = subprocess.Popen(
            [
                str(LANSPREAD),
                "run",
                "--games-dir",
                str(home / "games"),
                "--state-dir",
                str(self.state),
                "--catalog",
                str(catalog),
                *ARGS,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        header = self.wait_line(r"^Lanspread .* peer ([0-9a-f]{32})")
        self.peer_id = header.split("peer ")[1].split()[0]
        # the socket is up once the first game state has been printed
        self.wait_line(r"^game ")
        deadline = time.monotonic() + 10
        while not self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()

    def wait_line(self, pattern: str, timeout: float = 60) -> str:
        rx = re.compile(pattern)
        with self._cond:
            ok = self._cond.wait_for(lambda: any(rx.search(ln) for ln in self.lines), timeout)
            assert ok, f"no line like {pattern!r}:\n" + "\n".join(self.lines)
            return next(ln for ln in self.lines if rx.search(ln))

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        return self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsolePeer]:
    home = tmp_path_factory.mktemp("client")
    catalog = home / "catalog.json"
    create_set(home / "games", "alpha", catalog=catalog)
    p = ConsolePeer(home, catalog)
    try:
        yield p
    finally:
        p.close()


def lanspread(peer: ConsolePeer, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--state-dir", peer.state, timeout=60)


def test_status_names_the_running_peer(peer) -> None:
    proc = lanspread(peer, "status")
    assert proc.returncode == 0, proc.stderr
    assert re.search(rf"^peer\s+{peer.peer_id}", proc.stdout, re.M)
    assert re.search(r"^games\s+2 here, serving 2$", proc.stdout, re.M)
    data = json.loads(lanspread(peer, "status", "--json").stdout)
    assert data["peer_id"] == peer.peer_id
    assert data["state_dir"] == str(peer.state.resolve())


def test_games_lists_the_library_in_words(peer) -> None:
    proc = lanspread(peer, "games")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"^borealis\s+2\.1\.0\s+.*\s+Ready$", proc.stdout, re.M)
    listing = json.loads(lanspread(peer, "games", "--json").stdout)
    assert {g["id"] for g in listing["games"]} == {"aurora", "borealis"}


def test_install_goes_through_the_running_peer(peer) -> None:
    proc = lanspread(peer, "install", "aurora")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("install: aurora done")
    assert proc.stderr == ""
    assert (peer.home / "games" / "aurora" / "local").is_dir()
    # the console saw it happen; the peer is still there after the client left
    peer.wait_line(r"^install aurora: finished$")
    assert lanspread(peer, "status").returncode == 0
    proc = lanspread(peer, "uninstall", "aurora", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["op"] == "uninstall"
    assert not (peer.home / "games" / "aurora" / "local").exists()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("install", "nosuch"), "no game 'nosuch'"),
        (("cancel", "aurora"), "nothing to cancel for aurora"),
        # download is refused today (unknown command) and will fail for an unknown
        # game once it exists: either way one line
        (("download", "nosuch"), ""),
        (("install", "aurora", "--games-dir", "/elsewhere"), "uses games dir"),
    ],
)
def test_a_failure_is_one_line(peer, args, says) -> None:
    proc = lanspread(peer, *args)
    assert proc.returncode != 0
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("lanspread: ") and says in lines[0]
    assert proc.stdout == ""


def test_without_a_peer_the_commands_say_how_to_start_one(tmp_path: Path) -> None:
    for args in (("status",), ("games",), ("download", "aurora"), ("cancel", "aurora")):
        proc = invoke(*args, "--state-dir", tmp_path / "none")
        assert proc.returncode == 1
        assert proc.stderr == (
            f"lanspread: no running peer for state dir {tmp_path / 'none'};"
            " start one with 'lanspread run'\n"
        )


def test_the_socket_is_private_replaced_when_stale_and_removed_at_exit(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "games", "charlie", catalog=catalog)
    first = ConsolePeer(tmp_path, catalog)
    try:
        mode = first.socket.lstat().st_mode
        assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o600
        first.stop(signal.SIGKILL)
    finally:
        first.close()
    assert first.socket.exists(), "a killed peer leaves its socket behind"
    proc = run_cli("status", "--state-dir", first.state)
    assert proc.returncode == 1 and "no running peer" in proc.stderr

    second = ConsolePeer(tmp_path, catalog)
    try:
        assert run_cli("status", "--state-dir", second.state).returncode == 0
        assert second.stop(signal.SIGTERM) == 0
        second.wait_line(r"^peer stopped$")
    finally:
        second.close()
    assert not second.socket.exists()
    # with no peer, install works on the games dir directly again
    proc = run_cli(
        "install", "dunes", "--games-dir", tmp_path / "games", "--state-dir", second.state
    )
    assert proc.returncode == 0, proc.stderr


class FakeHandle:
    """Just enough of a PeerRuntimeHandle to serve sessions: echoes commands."""

    def __init__(self) -> None:
        from lanspread_core.runtime.eventbus import EventBus

        self.bus = EventBus()
        self.stopped = anyio.Event()
        self.shutdowns = 0

    def ready_event(self) -> Ready:
        return Ready("f" * 32, "", "0", "127.0.0.1:1", ["127.0.0.1:1"], 2, "/g", "/s")

    def library_event(self) -> LibraryChanged:
        return LibraryChanged(0, [], [])

    def events(self):
        return self.bus.subscribe()

    async def send(self, command: dict) -> dict:
        if command.get("cmd") == "fail":
            raise LanspreadError("it failed")
        self.bus.publish(OpProgress(OpKind.INSTALL, "g", done=1, total=2))
        return {"echo": command}

    async def wait_stopped(self) -> None:
        await self.stopped.wait()

    async def shutdown(self) -> None:
        self.shutdowns += 1
        self.stopped.set()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_sessions_on_a_long_socket_path_end_with_the_client_not_the_peer(
    tmp_path: Path,
) -> None:
    state = tmp_path / ("x" * 80) / "state"
    state.mkdir(parents=True, mode=0o700)
    sock = StateDir(state).control_socket
    assert len(str(sock)) > 108
    handle = FakeHandle()
    async with anyio.create_task_group() as tg:
        assert await tg.start(serve_control_socket, handle, sock) == sock
        assert stat.S_IMODE(sock.lstat().st_mode) == 0o600
        for _ in range(2):  # a second client after the first one left
            async with connect(state) as peer:
                assert peer.ready["peer_id"] == "f" * 32
                seen: list[Event] = []
                result = await peer.call("hello", on_event=seen.append, x=1)
                assert result == {"echo": {"id": 1, "cmd": "hello", "x": 1}}
                assert seen == [OpProgress(OpKind.INSTALL, "g", done=1, total=2)]
                with pytest.raises(PeerCommandError, match="it failed"):
                    await peer.call("fail")
        await anyio.sleep(0.05)
        assert handle.shutdowns == 0 and not handle.stopped.is_set()
        handle.stopped.set()
    assert not sock.exists()
    with pytest.raises(NoRunningPeer):
        async with connect(state):
            pass
