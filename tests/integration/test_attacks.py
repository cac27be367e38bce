"""Attacks on a real ``lanspread peer``, played by rogue clients written against
docs/protocol.md (:mod:`support.rogue`), each asserting the safe outcome.

During 64 slow readers, a token flood, 1,100 idle data connections and many
QUIC connections holding unfinished 8 MiB frames, an honest peer downloads a
game from the victim: every byte verified, the tree identical. The victim's
peak RSS stays under 200 MB through the QUIC memory attack, the victim's log
names each refusal once (not once per connection), and a 10,000-file game
downloads to a peer whose open-files limit is 1,024.

Other attacks of issue 15 have their own suites: the nested stdin line
(``test_jsonl_input.py``), malformed and hostile frames
(``test_hostile_inputs.py``, ``test_control_fuzz.py``), the stalled download
(``test_download_bad_source.py``) and the sync-loop peer
(``test_sync_loop_peer.py``).

Deadlines here only turn a hang into a failure; nothing is timed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from support.cli import run_cli
from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.rogue import data_connect, rogue_control, rogue_identity, slow_reader
from support.trees import digest_tree

MiB = 1 << 20
GAME, DECOY = "borealis", "aurora"
#: a hang becomes a failure after this long
DOWNLOAD_BOUND = 180.0
RSS_LIMIT = 200_000_000
#: the common default limit of open files
NOFILE_1024 = ["prlimit", "--nofile=1024:1024"]

#: ``attack(stop, ready)``: runs until ``stop`` is set; sets ``ready`` once it bites
Attack = Callable[[threading.Event, threading.Event], Awaitable[Any]]


@pytest.fixture
def catalog(tmp_path: Path, game_sets: GameSets) -> Path:
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=32 * MiB)
    return catalog


@contextmanager
def attacking(attack: Attack) -> Iterator[list[Any]]:
    """Run ``attack`` on an event loop of its own; the block starts once it is
    ready and ends it. Its result lands in the yielded list; its error is raised."""
    stop, ready = threading.Event(), threading.Event()
    result: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            result.append(anyio.run(attack, stop, ready))
        except BaseException as exc:
            errors.append(exc)
        finally:
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        assert ready.wait(120), "the attack never got going"
        if errors:
            raise errors[0]
        yield result
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the attack did not stop"
    if errors:
        raise errors[0]


async def _wait(stop: threading.Event) -> None:
    while not stop.is_set():
        await anyio.sleep(0.1)


class Counted:
    """Sets ``event`` once :meth:`add` was called ``target`` times (thread safe)."""

    def __init__(self, target: int, event: threading.Event) -> None:
        self._left = target
        self._event = event
        self._lock = threading.Lock()

    def add(self) -> None:
        with self._lock:
            self._left -= 1
            if self._left <= 0:
                self._event.set()


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def _decoy_ranges(victim: PeerProc, count: int) -> list[tuple[str, int, int]]:
    """``count`` different 1 MiB ranges of the decoy game's biggest file."""
    root = victim.games_dir / DECOY
    big = max((p for p in root.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
    size = big.stat().st_size
    return [(big.name, (i * MiB) % (size - MiB), MiB) for i in range(count)]


def _download(c: PeerProc, a: PeerProc, game: str = GAME) -> None:
    """``c`` downloads ``game`` from ``a``: finished, and the same tree."""
    sources_of(c, game, 1, timeout=30)
    since = c.mark()
    c.send("download", game_id=game, install=False)
    end = c.wait_event(
        lambda e: (
            e.get("game_id") == game
            and e["event"]
            in (
                "download-finished",
                "download-failed",
                "download-all-peers-gone",
                "download-cancelled",
            )
        ),
        since=since,
        timeout=DOWNLOAD_BOUND,
    )
    assert end["event"] == "download-finished", end
    assert digest_tree(c.games_dir / game) == digest_tree(a.games_dir / game)


def _log(peer: PeerProc) -> str:
    logs = peer.workdir / "state" / "logs"
    return "".join(p.read_text(errors="replace") for p in sorted(logs.glob("*.log*")))


def _peak_rss(peer: PeerProc) -> int:
    with open(f"/proc/{peer.proc.pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


@contextmanager
def _victim_and_downloader(
    tmp_path: Path, catalog: Path, *, victim_prefix: list[str] | None = None
) -> Iterator[tuple[PeerProc, PeerProc]]:
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(tmp_path / "a", args=LOOPBACK, catalog=catalog, prefix=victim_prefix or [])
        )
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        yield a, c


def test_a_download_completes_during_64_slow_readers(tmp_path: Path, catalog: Path) -> None:
    with _victim_and_downloader(tmp_path, catalog) as (a, c):
        host, port = _host_port(a.control)
        data_port = int(a.ready["data_port"])
        # 16 MiB per grant: more than the socket buffers take at once
        ranges = _decoy_ranges(a, 16)

        async def slow_readers(stop: threading.Event, ready: threading.Event) -> int:
            async with rogue_control(rogue_identity(tmp_path / "rogue"), host, port) as rogue:
                tokens = []
                for _ in range(64):
                    reply = await rogue.grant(DECOY, ranges)
                    assert reply["type"] == "TransferGrant", reply
                    tokens.append(reply["token"])
            served = Counted(32, ready)  # every send slot of the victim is held
            with ThreadPoolExecutor(len(tokens)) as pool:
                futures = [
                    pool.submit(slow_reader, host, data_port, t, stop.is_set, served.add)
                    for t in tokens
                ]
                await _wait(stop)
                for f in futures:
                    f.result()
            return len(tokens)

        with attacking(slow_readers) as started:
            _download(c, a)
        assert started == [64]
        assert "cut a send to 127.0.0.9" in _log(a)  # the slow ones gave way


def test_a_download_completes_during_a_token_flood(tmp_path: Path, catalog: Path) -> None:
    with _victim_and_downloader(tmp_path, catalog) as (a, c):
        host, port = _host_port(a.control)
        ranges = _decoy_ranges(a, 256)

        async def flood(stop: threading.Event, ready: threading.Event) -> dict[str, int]:
            answers: dict[str, int] = {}
            async with rogue_control(rogue_identity(tmp_path / "rogue"), host, port) as rogue:

                async def ask(first: int) -> None:
                    i = first
                    while not stop.is_set():
                        reply = await rogue.grant(DECOY, [ranges[i % len(ranges)]])
                        key = reply.get("code", reply["type"])
                        answers[key] = answers.get(key, 0) + 1
                        if key == "busy":  # the victim's table is full
                            ready.set()
                        i += 16

                async with anyio.create_task_group() as tg:
                    for first in range(16):
                        tg.start_soon(ask, first)
            return answers

        with attacking(flood) as answers:
            _download(c, a)
        assert answers[0].get("busy", 0) > 0, answers  # the flood was refused, not served
        assert "Traceback" not in _log(a)


def test_1100_idle_connections_starve_neither_downloads_nor_the_control_socket(
    tmp_path: Path, catalog: Path
) -> None:
    with _victim_and_downloader(tmp_path, catalog, victim_prefix=NOFILE_1024) as (a, c):
        data_port = int(a.ready["data_port"])

        async def idle(stop: threading.Event, ready: threading.Event) -> int:
            def hold() -> int:
                socks = []
                opened = 0
                while not stop.is_set():
                    socks = [s for s in socks if _open(s)]
                    while len(socks) < 1100 and not stop.is_set():
                        try:
                            socks.append(data_connect("127.0.0.1", data_port))
                            opened += 1
                        except OSError:
                            break
                    if opened >= 1100:
                        ready.set()
                    stop.wait(0.2)
                for s in socks:
                    s.close()
                return opened

            return await anyio.to_thread.run_sync(hold)

        with attacking(idle) as opened:
            _download(c, a)
            status = run_cli("status", "--state-dir", a.workdir / "state", timeout=60)
            assert status.returncode == 0, status.stderr
        assert opened[0] >= 1100
        log = _log(a)
        # said once per cause and source, not once per connection or per 0.1 s
        assert 1 <= log.count("refused data connections") <= 3, log[-3000:]
        assert log.count("accept failed") <= 1


def _open(sock: socket.socket) -> bool:
    """Whether the server still holds this connection (peeking, not reading)."""
    try:
        sock.setblocking(False)
        return sock.recv(1, socket.MSG_PEEK) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)


def test_rss_stays_bounded_through_unfinished_quic_frames(tmp_path: Path, catalog: Path) -> None:
    with _victim_and_downloader(tmp_path, catalog) as (a, c):
        host, port = _host_port(a.control)
        before = _peak_rss(a)

        async def memory(stop: threading.Event, ready: threading.Event) -> list[str]:
            """4 connections, each with 32 streams sending 2 MiB of a declared 8 MiB
            frame: 256 MiB the victim would hold without a budget."""
            identity = rogue_identity(tmp_path / "rogue")
            async with AsyncExitStack() as stack:
                rogues = [
                    await stack.enter_async_context(rogue_control(identity, host, port))
                    for _ in range(4)
                ]
                for rogue in rogues:
                    rogue.start_unfinished(32, 8 * MiB, 2 * MiB)
                with anyio.fail_after(120):  # all sent, or refused by the victim
                    while any(r.unsent() for r in rogues) and not stop.is_set():
                        for r in rogues:
                            r.protocol.transmit()
                        await anyio.sleep(0.2)
                refusals = [m for r in rogues for m in r.refusal_messages()]
                ready.set()
                await _wait(stop)
            return refusals

        with attacking(memory) as result:
            _download(c, a)
            peak = _peak_rss(a)
        assert peak < RSS_LIMIT, (
            f"peak RSS {peak / 1e6:.0f} MB (before the attack {before / 1e6:.0f})"
        )
        # the budget refused streams as they grew, before any deadline
        budget = ("unfinished requests", "requests in flight would pass")
        assert any(b in m for m in result[0] for b in budget), result[0][:5]


def test_a_10000_file_game_downloads_under_a_1024_open_files_limit(tmp_path: Path) -> None:
    game = "manyfiles"
    root = tmp_path / "a" / "games" / game
    for d in range(100):
        folder = root / f"d{d:02}"
        folder.mkdir(parents=True)
        for f in range(100):
            (folder / f"f{f:02}.bin").write_bytes(bytes([d, f]) * (512 + d * 7 + f))
    (root / "version.ini").write_text("1.0\n")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(f'{{"games": [{{"id": "{game}", "name": "Many", "version": "1.0"}}]}}\n')
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=catalog))
        c = stack.enter_context(
            PeerProc(
                tmp_path / "c",
                args=[*LOOPBACK, "--peer", a.control],
                catalog=catalog,
                prefix=NOFILE_1024,
            )
        )
        _download(c, a, game)
