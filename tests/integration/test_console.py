"""The console front-end as a person sees it: a real ``lanspread run`` on a
pseudo-terminal, its screen rebuilt by pyte, next to a second real peer."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pyte
import pytest

from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD
from support.peerproc import PeerProc

COLS, ROWS = 130, 45
FAST = ["--ping-interval", "0.5", "--stale-timeout", "3", "--listen", "127.0.0.1:0"]
BIG = 200 * 1024 * 1024


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    for key in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE"):
        env.pop(key, None)
    env["TERM"] = "xterm-256color"
    return env


class PtyScreen:
    """A process on a pseudo-terminal; every screen it drew is kept, in order."""

    def __init__(self, argv: list[str]) -> None:
        master, slave = pty.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.proc = subprocess.Popen(
            argv, stdin=slave, stdout=slave, stderr=slave, env=_env(), start_new_session=True
        )
        os.close(slave)
        self._master = master
        self._screen = pyte.Screen(COLS, ROWS)
        self._stream = pyte.ByteStream(self._screen)
        self.frames: list[str] = []
        self._cond = threading.Condition()
        self._eof = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            ready, _, _ = select.select([self._master], [], [], 0.5)
            if not ready:
                if self.proc.poll() is not None:
                    break
                continue
            try:
                data = os.read(self._master, 1 << 16)
            except OSError:  # EIO: the process closed the terminal
                break
            if not data:
                break
            with self._cond:
                self._stream.feed(data)
                if not select.select([self._master], [], [], 0.02)[0]:
                    self.frames.append("\n".join(line.rstrip() for line in self._screen.display))
                    self._cond.notify_all()
        with self._cond:
            self.frames.append("\n".join(line.rstrip() for line in self._screen.display))
            self._eof = True
            self._cond.notify_all()

    def mark(self) -> int:
        with self._cond:
            return len(self.frames)

    def wait_for(self, pred: Callable[[str], bool], timeout: float = 30, since: int = 0) -> str:
        """The first screen from ``since`` on for which ``pred`` holds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            index = since
            while True:
                while index < len(self.frames):
                    frame = self.frames[index]
                    index += 1
                    if pred(frame):
                        return frame
                if self._eof:
                    raise AssertionError(f"the console ended; last screen:\n{self.screen()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not shown within {timeout}s; screen:\n{self.screen()}")
                self._cond.wait(left)

    def screen(self) -> str:
        return self.frames[-1] if self.frames else ""

    def stop(self, sig: int = signal.SIGINT, timeout: float = 10) -> int:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        finally:
            with self._cond:
                self._cond.wait_for(lambda: self._eof, timeout=2)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        os.close(self._master)


@pytest.fixture
def lan(tmp_path: Path) -> Iterator[tuple[Path, Path, PeerProc]]:
    """A catalog, this peer's big 'alpha' games, and a running peer 'bob' with 'bravo'."""
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "a" / "games", "alpha", size=BIG, catalog=catalog)
    create_set(tmp_path / "b" / "games", "bravo", catalog=catalog)
    bob = PeerProc(
        tmp_path / "b", args=[*FAST, "--discovery", "static", "--name", "bob"], catalog=catalog
    )
    try:
        yield tmp_path / "a", catalog, bob
    finally:
        bob.__exit__()


def _run_argv(home: Path, catalog: Path, bob: PeerProc) -> list[str]:
    return [
        str(LANSPREAD),
        "run",
        "--games-dir",
        str(home / "games"),
        "--state-dir",
        str(home / "state"),
        "--catalog",
        str(catalog),
        "--discovery",
        "static",
        "--peer",
        bob.control,
        "--name",
        "alice",
        *FAST,
    ]


def _row(frame: str, first: str) -> str:
    """The table row whose first cell is ``first`` (empty when none)."""
    for line in frame.splitlines():
        cells = [c.strip() for c in line.strip("│ ").split("│")]
        if cells and cells[0] == first:
            return " | ".join(cells)
    return ""


def test_the_live_view_shows_peers_progress_and_the_result(lan) -> None:
    home, catalog, bob = lan
    console = PtyScreen(_run_argv(home, catalog, bob))
    try:
        # the header, then the other peer with its address and its games
        first = console.wait_for(lambda s: "Library" in s)
        assert "state dir" in first and f"{home / 'state'} (created)" in first
        assert re.search(
            r"ports +UDP \d+ \(peers\) and TCP \d+ \(downloads\), on 127\.0\.0\.1", first
        )
        assert str(home / "state" / "control.sock") in first
        # (conditions are checked on one screen together: a screen read while a
        # redraw is half written mixes two frames, and only the whole one counts)
        console.wait_for(
            lambda s: (
                re.search(r"^bob \| 127\.0\.0\.1:\d+ \| 3 \|", _row(s, "bob")) is not None
                and _row(s, "cascade").endswith("| - | Available from 1 peer")
                and _row(s, "ember").endswith("| - | Available from 1 peer")
                and _row(s, "aurora").endswith("| - | Ready")
                and _row(s, "borealis").endswith("| - | Ready")
            )
        )

        # an install started by the client shows a bar with bytes while it runs
        since = console.mark()
        client = subprocess.Popen(
            [str(LANSPREAD), "install", "aurora", "--state-dir", str(home / "state")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        bar = re.compile(r"install aurora\s+━+.*\d+%.*/209\.7 MB")
        console.wait_for(lambda s: bar.search(s) is not None and "Operations" in s, since=since)
        out, err = client.communicate(timeout=60)
        assert client.returncode == 0, err
        assert out.strip() == "install: aurora done with libarchive" or out.startswith(
            "install: aurora done"
        )

        # and when it has ended: installed, still Ready, no bar, the news in Recent
        console.wait_for(
            lambda s: (
                _row(s, "aurora").endswith("| yes | Ready")
                and "Operations" not in s
                and re.search(r"^\d\d:\d\d:\d\d install aurora: finished$", s, re.M) is not None
            ),
            since=since,
        )
        assert (home / "games" / "aurora" / "local").is_dir()

        # Ctrl-C: a clean stop, exit 0, and bob hears Goodbye
        since_bob = bob.mark()
        assert console.stop(signal.SIGINT) == 0
        console.wait_for(lambda s: "Peer alice · 1 peer · serving 2 · stopped" in s, since=since)
        bob.wait_event(
            lambda e: e["event"] == "peer-left" and e["reason"] == "goodbye", since=since_bob
        )
        assert not (home / "state" / "control.sock").exists()
    finally:
        console.close()


def test_plain_lines_when_stdout_is_a_pipe(lan) -> None:
    home, catalog, bob = lan
    proc = subprocess.Popen(
        _run_argv(home, catalog, bob),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    lines: list[str] = []
    cond = threading.Condition()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with cond:
                lines.append(line.rstrip("\n"))
                cond.notify_all()

    def wait_line(pattern: str, timeout: float = 15) -> str:
        rx = re.compile(pattern)
        with cond:
            found = cond.wait_for(lambda: any(rx.search(ln) for ln in lines), timeout=timeout)
            assert found, f"no line like {pattern!r} in:\n" + "\n".join(lines)
            return next(ln for ln in lines if rx.search(ln))

    threading.Thread(target=read, daemon=True).start()
    try:
        assert wait_line(r"^Lanspread .* peer [0-9a-f]{32} \(alice\)$")
        wait_line(r"^  games dir .*/a/games$")
        wait_line(r"^game aurora \(Aurora Assault\): Ready$")
        wait_line(r"^peer joined: bob \(127\.0\.0\.1:\d+\)$")
        wait_line(r"^game cascade \(Cascade.*\): Available from 1 peer$")

        def download(game: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                [str(LANSPREAD), "download", game, "--state-dir", str(home / "state")],
                capture_output=True,
                text=True,
                env=_env(),
                timeout=60,
            )

        # a download from bob, driven by the client: its lines, then the new state
        fetch = download("cascade")
        assert fetch.returncode == 0, fetch.stderr
        assert fetch.stdout.startswith("download: cascade done")
        wait_line(r"^download cascade: started$")
        wait_line(r"^download cascade: finished$")
        wait_line(r"^game cascade \(Cascade Tactics\): Ready, installed$")
        # a download that fails is said once: on stdout, not again as a warning on stderr
        bob.__exit__()  # the one peer that has ember leaves
        wait_line(r"^peer left: bob ")
        failed = download("ember")
        assert failed.returncode != 0
        said = wait_line(r"^error: Download of ember failed: ")
        os.killpg(proc.pid, signal.SIGTERM)
        assert proc.wait(10) == 0
        wait_line(r"^peer stopped$")
        with cond:
            text = "\n".join(lines)
        assert "\x1b" not in text, "no terminal control sequences in plain mode"
        assert text.count("ember failed") == 1, text
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "ember" not in err, f"said again on stderr: {err!r} (stdout: {said!r})"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
