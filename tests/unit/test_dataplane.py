"""The TCP data plane: tokens, the sendfile server, the verifying client, download files.

Real sockets on loopback throughout; chunks are small (64 KiB) so every
transfer spans many of them and the suite stays fast.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from lanspread_core.dataplane import link as link_module
from lanspread_core.dataplane.client import ChunkJob, DataConnection, fetch_ranges
from lanspread_core.dataplane.errors import (
    DataListenError,
    SourceFailed,
    SourceRefused,
    TransferRefused,
)
from lanspread_core.dataplane.files import DownloadFiles
from lanspread_core.dataplane.link import DataLink
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.errors import Cancelled
from lanspread_core.library.layout import UnsafeDownloadPath
from lanspread_core.library.manifest import (
    ChunkRange,
    FileEntry,
    Manifest,
    build_manifest,
    chunk_ranges,
    hash_chunk,
)
from lanspread_core.system import faults
from lanspread_core.system.faults import ENV_FAULT
from lanspread_core.wire.dataplane import encode_request, encode_status, parse_status
from lanspread_core.wire.messages import ByteRange

GAME = "quake"
PEER = "0123456789abcdef0123456789abcdef"
CHUNK = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """A downloaded game root with a multi-chunk archive and things never served."""
    root = tmp_path / "games" / GAME
    (root / "sub").mkdir(parents=True)
    (root / "pak0.eti").write_bytes(os.urandom(5 * CHUNK + 1234))
    (root / "sub" / "readme.txt").write_bytes(os.urandom(3000))
    (root / "version.ini").write_text("1.09\n")
    (root / "local").mkdir()
    (root / "local" / "save.dat").write_bytes(b"user data")
    (root / ".local.backup").mkdir()
    (root / ".local.backup" / "old.dat").write_bytes(b"backup")
    (tmp_path / "secret.txt").write_bytes(b"outside the root")
    (root / "link.eti").symlink_to(root / "pak0.eti")
    (root / "outside").symlink_to(tmp_path)
    return root


@pytest.fixture
def manifest(root: Path) -> Manifest:
    return build_manifest(root, chunk_size=CHUNK)


def ranges_of(jobs: Sequence[ChunkJob]) -> list[ByteRange]:
    return [ByteRange(j.path, j.offset, j.length) for j in jobs]


def resolver(root: Path, game_id: str = GAME) -> Callable[[Grant], Path]:
    """The runtime's eligibility check, reduced to: only this one game."""

    def resolve(grant: Grant) -> Path:
        if grant.game_id != game_id:
            raise TransferRefused(f"{grant.game_id} is not served by this peer")
        return root

    return resolve


@asynccontextmanager
async def serving(
    root: Path,
    tokens: TransferTokens | None = None,
    outbound: OutboundTransfers | None = None,
    **kwargs: Any,
) -> AsyncIterator[tuple[int, TransferTokens, OutboundTransfers]]:
    tokens = TransferTokens() if tokens is None else tokens
    outbound = OutboundTransfers() if outbound is None else outbound
    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(
            lambda task_status: serve_data(
                "127.0.0.1",
                0,
                tokens,
                resolver(root),
                outbound,
                task_status=task_status,
                **kwargs,
            )
        )
        yield endpoint.port, tokens, outbound
        tg.cancel_scope.cancel()


class Results:
    """An on_chunk callback that records what it was told."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[ChunkJob, bool]] = []
        self.delay = delay

    def __call__(self, job: ChunkJob, ok: bool) -> None:
        self.calls.append((job, ok))
        if self.delay:
            time.sleep(self.delay)

    @property
    def bad(self) -> list[ChunkJob]:
        return [job for job, ok in self.calls if not ok]


async def fetch(
    port: int,
    token: str,
    jobs: Sequence[ChunkJob],
    writer: Any,
    results: Results | None = None,
    cancel: threading.Event | None = None,
    timeout: float = 5.0,
) -> Results:
    results = results if results is not None else Results()

    def run() -> None:
        fetch_ranges(
            "127.0.0.1",
            port,
            token,
            jobs,
            writer,
            cancel=cancel or threading.Event(),
            timeout=timeout,
            on_chunk=results,
        )

    await anyio.to_thread.run_sync(run)
    return results


class NullWriter:
    def __init__(self) -> None:
        self.writes: list[tuple[str, int, bytes]] = []

    def pwrite(self, path: str, offset: int, data: memoryview) -> None:
        self.writes.append((path, offset, bytes(data)))


# -- tokens -------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_single_use_and_expire() -> None:
    clock = Clock()
    tokens = TransferTokens(clock=clock, max_outstanding=3)
    ranges = [ByteRange("a.eti", 0, 10)]
    token = tokens.issue(GAME, PEER, ranges, ttl=30)
    assert len(token) == 32 and int(token, 16) >= 0
    assert tokens.redeem(token) == Grant(GAME, PEER, tuple(ranges))
    with pytest.raises(TransferRefused, match="already used"):
        tokens.redeem(token)
    with pytest.raises(TransferRefused, match="unknown"):
        tokens.redeem("0" * 32)

    late = tokens.issue(GAME, PEER, ranges, ttl=30)
    clock.now += 31
    with pytest.raises(TransferRefused, match="expired"):
        tokens.redeem(late)

    for _ in range(3):
        tokens.issue(GAME, PEER, ranges, ttl=5)
    with pytest.raises(TransferRefused, match="try again"):
        tokens.issue(GAME, PEER, ranges)
    clock.now += 6  # expired tokens are purged, making room
    assert len(tokens) == 0
    tokens.issue(GAME, PEER, ranges)
    assert tokens.issue(GAME, PEER, ranges) != tokens.issue(GAME, PEER, ranges)


def test_a_changed_game_revokes_its_tokens() -> None:
    tokens = TransferTokens(clock=Clock())
    ranges = [ByteRange("a.eti", 0, 10)]
    gone = [tokens.issue(GAME, PEER, ranges, manifest_hash="h1") for _ in range(2)]
    kept = tokens.issue("doom", PEER, ranges)
    assert tokens.revoke(GAME) == 2 and tokens.outstanding(PEER) == 1
    for token in gone:
        with pytest.raises(TransferRefused, match="unknown"):
            tokens.redeem(token)
    assert tokens.redeem(kept).game_id == "doom"


# -- a whole transfer ---------------------------------------------------------


@pytest.mark.anyio
async def test_transfer_lands_byte_identical(
    root: Path, manifest: Manifest, tmp_path: Path
) -> None:
    jobs = chunk_ranges(manifest)
    assert len(jobs) >= 7 and manifest.file("pak0.eti") is not None
    counts: list[int] = []
    dest = tmp_path / "dest"
    dest.mkdir()
    async with serving(root, outbound=OutboundTransfers(counts.append)) as (port, tokens, out):
        files = DownloadFiles(dest, manifest)
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        results = await fetch(port, token, jobs, files)
        files.close()
        await wait_until(lambda: out.live_count == 0)
    assert [job for job, _ in results.calls] == jobs
    assert not results.bad
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (root / entry.path).read_bytes()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file()) == [
        "pak0.eti",
        "sub/readme.txt",
    ]
    assert counts == [1, 0]


@pytest.mark.anyio
async def test_ranges_may_come_in_any_order(root: Path, manifest: Manifest) -> None:
    jobs = list(reversed(chunk_ranges(manifest)))
    async with serving(root) as (port, tokens, _):
        writer = NullWriter()
        results = await fetch(port, tokens.issue(GAME, PEER, ranges_of(jobs)), jobs, writer)
    assert not results.bad and len(writer.writes) == len(jobs)
    data = (root / "pak0.eti").read_bytes()
    for path, offset, chunk in writer.writes:
        if path == "pak0.eti":
            assert chunk == data[offset : offset + len(chunk)]


# -- misuse -------------------------------------------------------------------


def job(path: str, offset: int = 0, length: int = 10) -> ChunkRange:
    return ChunkRange(path, 0, offset, length, "0" * 64)


MISUSE = {
    "past the end": (job("pak0.eti", 5 * CHUNK, 1235), "past the end"),
    "under local": (job("local/save.dat", 0, 9), "local/ and its contents are never served"),
    "dot dot": (job("../secret.txt", 0, 5), "climbs out"),
    "absolute": (job("/etc/passwd", 0, 5), "absolute"),
    "reserved name": (job(".local.backup/old.dat", 0, 6), ".local.backup/ and its contents"),
    "version.ini": (job("version.ini", 0, 4), "version.ini is never served"),
    "symlink": (job("link.eti", 0, 10), "symbolic link"),
    "symlinked folder": (job("outside/secret.txt", 0, 5), "symbolic link"),
    "not canonical": (job("sub//readme.txt", 0, 5), "canonical"),
    "missing": (job("nope.eti", 0, 5), "does not exist"),
    "a folder": (job("sub", 0, 0), "not a regular file"),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", sorted(MISUSE))
async def test_bad_ranges_are_refused(root: Path, case: str) -> None:
    bad, message = MISUSE[case]
    good = job("pak0.eti", 0, 100)
    async with serving(root) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of([good, bad]))
        with pytest.raises(SourceRefused, match=message) as info:
            await fetch(port, token, [good, bad], NullWriter())
        assert "refused the transfer" in str(info.value)
        assert "\n" not in str(info.value)
        await wait_until(lambda: out.live_count == 0)


@pytest.mark.anyio
async def test_bad_tokens_are_refused(root: Path, manifest: Manifest) -> None:
    clock = Clock()
    jobs = chunk_ranges(manifest)[:2]
    async with serving(root, TransferTokens(clock=clock)) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        await fetch(port, token, jobs, NullWriter())
        with pytest.raises(SourceRefused, match="already used"):
            await fetch(port, token, jobs, NullWriter())

        other_game = tokens.issue("doom", PEER, ranges_of(jobs))
        with pytest.raises(SourceRefused, match="doom is not served"):
            await fetch(port, other_game, jobs, NullWriter())

        expired = tokens.issue(GAME, PEER, ranges_of(jobs), ttl=5)
        clock.now += 6
        with pytest.raises(SourceRefused, match="expired"):
            await fetch(port, expired, jobs, NullWriter())

        with pytest.raises(SourceRefused, match="unknown"):
            await fetch(port, "f" * 32, jobs, NullWriter())

        # a token is redeemed only from the address that asked for it
        elsewhere = tokens.issue(GAME, PEER, ranges_of(jobs), host="10.1.2.3")
        with pytest.raises(SourceRefused, match="granted to another address"):
            await fetch(port, elsewhere, jobs, NullWriter())
        here = tokens.issue(GAME, PEER, ranges_of(jobs), host="127.0.0.1")
        await fetch(port, here, jobs, NullWriter())

        # not even a frame: a length over the cap is refused at the header
        assert "malformed" in await anyio.to_thread.run_sync(raw_request, port, b"\xff" * 4)
        await wait_until(lambda: out.live_count == 0)


def raw_request(port: int, request: bytes) -> str:
    """Send ``request`` bytes as they are; the status the server answers."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        return read_status(sock)


def start_reading(port: int, token: str) -> socket.socket:
    """A connection that presented ``token`` and got ``ok``, its bytes not yet read."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(encode_request(token))
    assert read_status(sock) == "ok"
    return sock


def read_status(sock: socket.socket) -> str:
    header = recv_exact(sock, 4)
    error = parse_status(recv_exact(sock, struct.unpack(">I", header)[0]))
    return error or "ok"


def recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        piece = sock.recv(size - len(data))
        assert piece, "connection ended"
        data += piece
    return data


# -- faults -------------------------------------------------------------------


@pytest.mark.anyio
async def test_corrupt_once_fault_gives_exactly_one_bad_chunk(
    root: Path, manifest: Manifest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV_FAULT, "serve.corrupt_once")
    monkeypatch.setattr(faults, "_fired", set())  # the switch fires once per process
    jobs = chunk_ranges(manifest)
    dest = tmp_path / "dest"
    dest.mkdir()
    async with serving(root) as (port, tokens, _):
        files = DownloadFiles(dest, manifest)
        results = await fetch(port, tokens.issue(GAME, PEER, ranges_of(jobs)), jobs, files)
        assert results.bad == [jobs[0]]  # reported, not written, and the rest still came
        assert len(results.calls) == len(jobs)
        assert (dest / jobs[0].path).read_bytes()[: jobs[0].length] == bytes(jobs[0].length)
        again = await fetch(port, tokens.issue(GAME, PEER, ranges_of(jobs[:1])), jobs[:1], files)
        assert not again.bad  # only once per process
        files.close()
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (root / entry.path).read_bytes()


# -- readers and writers ------------------------------------------------------


def big_game(root: Path, size: int = 256 * 1024 * 1024) -> list[ChunkRange]:
    """A sparse file far larger than the socket buffers, and jobs for all of it."""
    with open(root / "big.eti", "wb") as fh:
        fh.truncate(size)
    step = 1024 * 1024
    return [ChunkRange("big.eti", i, i * step, step, "0" * 64) for i in range(size // step)]


async def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    with anyio.fail_after(timeout):
        while not check():
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_cancel_game_cancels_a_live_transfer_and_waits(root: Path) -> None:
    jobs = big_game(root)
    counts: list[int] = []
    async with serving(root, outbound=OutboundTransfers(counts.append)) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        slow = Results(delay=0.05)  # a slow reader: the sender soon blocks in sendfile
        outcome: list[BaseException] = []

        async def reader() -> None:
            try:
                await fetch(port, token, jobs, NullWriter(), slow)
            except SourceFailed as exc:
                outcome.append(exc)

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            await wait_until(lambda: len(slow.calls) >= 3)
            assert out.live_count == 1 and out.count(GAME) == 1
            out.block(GAME)
            started = time.monotonic()
            with anyio.fail_after(5):
                assert await out.cancel_game(GAME) == 1
            assert time.monotonic() - started < 2
            assert out.live_count == 0  # it has ended by the time cancel_game returns
        assert len(outcome) == 1 and "closed the connection" in str(outcome[0])
        assert len(slow.calls) < len(jobs)

        # blocked: a new transfer is refused; unblocked: served again
        small = jobs[:1]
        with pytest.raises(SourceRefused, match="being changed"):
            await fetch(port, tokens.issue(GAME, PEER, ranges_of(small)), small, NullWriter())
        out.unblock(GAME)
        assert (
            len(
                (
                    await fetch(
                        port, tokens.issue(GAME, PEER, ranges_of(small)), small, NullWriter()
                    )
                ).calls
            )
            == 1
        )
    assert counts == [1, 0, 1, 0]


@pytest.mark.anyio
async def test_exclusive_blocks_cancels_and_unblocks(root: Path) -> None:
    jobs = big_game(root, 64 * 1024 * 1024)
    async with serving(root) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        slow = Results(delay=0.05)
        async with anyio.create_task_group() as tg:

            async def reader() -> None:
                with pytest.raises(SourceFailed):
                    await fetch(port, token, jobs, NullWriter(), slow)

            tg.start_soon(reader)
            await wait_until(lambda: len(slow.calls) >= 1)
            async with out.exclusive(GAME):
                assert out.live_count == 0 and out.is_blocked(GAME)
            assert not out.is_blocked(GAME)


@pytest.mark.anyio
async def test_client_disconnect_ends_the_transfer(root: Path) -> None:
    jobs = big_game(root)
    async with serving(root) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        sock = await anyio.to_thread.run_sync(start_reading, port, token)
        await anyio.to_thread.run_sync(recv_exact, sock, 1024 * 1024)
        await wait_until(lambda: out.live_count == 1)
        sock.close()  # with unread bytes: the sender gets a reset at once
        await wait_until(lambda: out.live_count == 0, timeout=5)


@pytest.mark.anyio
async def test_a_stalled_receiver_is_dropped(root: Path) -> None:
    jobs = big_game(root)
    async with serving(root, stall_timeout=0.3) as (port, tokens, out):
        token = tokens.issue(GAME, PEER, ranges_of(jobs))
        sock = await anyio.to_thread.run_sync(start_reading, port, token)  # then reads nothing
        await wait_until(lambda: out.live_count == 1)
        await wait_until(lambda: out.live_count == 0, timeout=10)
        sock.close()


@pytest.mark.anyio
async def test_stopping_the_server_ends_live_transfers(root: Path) -> None:
    jobs = big_game(root)
    out = OutboundTransfers()
    with anyio.fail_after(5):
        async with serving(root, outbound=out) as (port, tokens, _):
            token = tokens.issue(GAME, PEER, ranges_of(jobs))
            sock = await anyio.to_thread.run_sync(start_reading, port, token)
            await wait_until(lambda: out.live_count == 1)
    assert out.live_count == 0
    sock.close()


# -- one connection, many grants ----------------------------------------------


def receive_on(conn: DataConnection, jobs: Sequence[ChunkJob], writer: Any) -> Results:
    results = Results()
    conn.receive(jobs, writer, cancel=threading.Event(), on_chunk=results)
    return results


@pytest.mark.anyio
async def test_one_connection_carries_grants_back_to_back_and_pipelined(
    root: Path, manifest: Manifest, tmp_path: Path
) -> None:
    jobs = chunk_ranges(manifest)
    parts = [jobs[:3], jobs[3:5], jobs[5:]]
    dest = tmp_path / "dest"
    dest.mkdir()
    counts: list[int] = []
    async with serving(root, outbound=OutboundTransfers(counts.append)) as (port, tokens, out):
        files = DownloadFiles(dest, manifest)
        link = DataLink("127.0.0.1", timeout=5)
        tokens_ = [tokens.issue(GAME, PEER, ranges_of(part)) for part in parts]

        def run() -> list[DataConnection]:
            first = link.request(port, tokens_[0], pipelined=False)
            # the second request goes out before a byte of the first is read
            second = link.request(port, tokens_[1], pipelined=True)
            assert not receive_on(first, parts[0], files).bad
            assert not receive_on(second, parts[1], files).bad
            third = link.request(port, tokens_[2], pipelined=False)
            assert not receive_on(third, parts[2], files).bad
            return [first, second, third]

        conns = await anyio.to_thread.run_sync(run)
        link.close()
        files.close()
        await wait_until(lambda: out.live_count == 0)
    assert conns[0] is conns[1] is conns[2]  # one TCP connection for all three
    for entry in manifest.files:
        assert (dest / entry.path).read_bytes() == (root / entry.path).read_bytes()
    assert counts.count(1) == 3  # each grant is registered as an outbound transfer


@pytest.mark.anyio
async def test_a_refused_grant_ends_its_connection_and_the_link_opens_another(
    root: Path, manifest: Manifest
) -> None:
    jobs = chunk_ranges(manifest)
    async with serving(root) as (port, tokens, _):
        link = DataLink("127.0.0.1", timeout=5)
        good = tokens.issue(GAME, PEER, ranges_of(jobs[:2]))
        spent = tokens.issue(GAME, PEER, ranges_of(jobs[2:4]))
        tokens.redeem(spent)
        again = tokens.issue(GAME, PEER, ranges_of(jobs[2:4]))

        def run() -> tuple[DataConnection, DataConnection]:
            first = link.request(port, good, pipelined=False)
            link.request(port, spent, pipelined=True)
            assert not receive_on(first, jobs[:2], NullWriter()).bad
            with pytest.raises(SourceRefused, match="already used"):
                receive_on(first, jobs[2:4], NullWriter())
            assert first.broken
            with pytest.raises(SourceFailed, match="gone"):  # never while a grant may arrive
                link.request(port, again, pipelined=True)
            second = link.request(port, again, pipelined=False)
            assert len(receive_on(second, jobs[2:4], NullWriter()).calls) == 2
            return first, second

        first, second = await anyio.to_thread.run_sync(run)
        link.close()
    assert first is not second


@pytest.mark.anyio
async def test_the_server_closes_an_idle_connection_and_the_link_replaces_it(
    root: Path, manifest: Manifest, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = chunk_ranges(manifest)
    monkeypatch.setattr(link_module, "REUSE_IDLE", 0.2)
    async with serving(root, request_timeout=0.4) as (port, tokens, _):
        token = tokens.issue(GAME, PEER, ranges_of(jobs[:1]))
        sock = await anyio.to_thread.run_sync(start_reading, port, token)
        await anyio.to_thread.run_sync(recv_exact, sock, jobs[0].length)
        sock.settimeout(5)
        started = time.monotonic()
        assert await anyio.to_thread.run_sync(sock.recv, 1) == b""  # closed, after the wait
        assert 0.3 < time.monotonic() - started < 4
        sock.close()

        link = DataLink("127.0.0.1", timeout=5)
        first_token, second_token = (
            tokens.issue(GAME, PEER, ranges_of(jobs[i : i + 1])) for i in (1, 2)
        )

        def run() -> tuple[DataConnection, DataConnection]:
            first = link.request(port, first_token, pipelined=False)
            receive_on(first, jobs[1:2], NullWriter())
            time.sleep(0.6)  # past the server's patience: reusing it would fail
            second = link.request(port, second_token, pipelined=False)
            assert len(receive_on(second, jobs[2:3], NullWriter()).calls) == 1
            return first, second

        first, second = await anyio.to_thread.run_sync(run)
        link.close()
    assert first is not second


# -- the client on its own ----------------------------------------------------


def fake_source(script: Callable[[socket.socket], None]) -> tuple[int, threading.Thread]:
    """A one-connection server that reads the request and then runs ``script``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                header = recv_exact(conn, 4)
                recv_exact(conn, struct.unpack(">I", header)[0])
                script(conn)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.anyio
async def test_client_reports_an_early_end_and_a_stall() -> None:
    chunk = os.urandom(1000)
    jobs = [ChunkRange("a.eti", i, i * 1000, 1000, hash_chunk("blake3", chunk)) for i in range(3)]

    def short(conn: socket.socket) -> None:
        conn.sendall(encode_status() + chunk + chunk[:400])

    port, thread = fake_source(short)
    results = Results()
    with pytest.raises(SourceFailed, match=r"closed the connection during chunk 1 of a\.eti"):
        await fetch(port, "a" * 32, jobs, NullWriter(), results)
    assert [ok for _, ok in results.calls] == [True]  # the whole chunk before it still counts
    thread.join()

    hold = threading.Event()

    def stall(conn: socket.socket) -> None:
        conn.sendall(encode_status() + chunk)
        hold.wait(5)

    port, thread = fake_source(stall)
    with pytest.raises(SourceFailed, match=r"sent nothing for 0\.5 s during chunk 1"):
        await fetch(port, "a" * 32, jobs, NullWriter(), timeout=0.5)
    hold.set()
    thread.join()

    cancel = threading.Event()
    cancel.set()
    port, thread = fake_source(lambda conn: conn.sendall(encode_status() + chunk * 3))
    with pytest.raises(Cancelled):
        await fetch(port, "a" * 32, jobs, NullWriter(), cancel=cancel)
    thread.join()

    with socket.create_server(("127.0.0.1", 0)) as closed:
        free_port = closed.getsockname()[1]
    with pytest.raises(SourceFailed, match="cannot connect"):
        await fetch(free_port, "a" * 32, jobs, NullWriter())


@pytest.mark.anyio
async def test_listen_error_is_one_sentence(root: Path) -> None:
    async with serving(root) as (port, tokens, out):
        with pytest.raises(DataListenError, match=f"port {port}"):
            await serve_data("127.0.0.1", port, tokens, resolver(root), out)


# -- download files -----------------------------------------------------------


def test_download_files_never_truncate(root: Path, manifest: Manifest, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    dest.mkdir()
    entry = manifest.file("pak0.eti")
    assert entry is not None
    first = DownloadFiles(dest, manifest)
    first.pwrite("pak0.eti", CHUNK, b"from peer one")
    first.close()
    assert (dest / "pak0.eti").stat().st_size == entry.size
    assert (dest / "sub" / "readme.txt").stat().st_size == 3000

    second = DownloadFiles(dest, manifest)
    second.pwrite("pak0.eti", 0, b"from peer two")
    second.close()
    data = (dest / "pak0.eti").read_bytes()
    assert data[CHUNK : CHUNK + 13] == b"from peer one"
    assert data[:13] == b"from peer two"

    third = DownloadFiles(dest, manifest)
    with pytest.raises(ValueError, match="overruns"):
        third.pwrite("pak0.eti", entry.size - 1, b"xy")
    with pytest.raises(ValueError, match="not a file of this download"):
        third.pwrite("local/x", 0, b"x")
    third.close()


def test_download_files_cut_a_stale_tail(manifest: Manifest, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "sub").mkdir(parents=True)
    (dest / "sub" / "readme.txt").write_bytes(b"s" * 5000)  # an older, longer version
    DownloadFiles(dest, manifest).close()
    assert (dest / "sub" / "readme.txt").read_bytes() == b"s" * 3000


def test_download_files_refuse_links_and_reserved_paths(manifest: Manifest, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "sub").symlink_to(outside)
    with pytest.raises(UnsafeDownloadPath, match="symbolic link"):
        DownloadFiles(dest, manifest)
    assert list(outside.iterdir()) == []

    (dest / "sub").unlink()
    (dest / "pak0.eti").unlink()  # created before the link in its folder was found
    (dest / "pak0.eti").symlink_to(outside / "target")
    with pytest.raises(UnsafeDownloadPath, match="symbolic link"):
        DownloadFiles(dest, manifest)
    assert not (outside / "target").exists()

    for bad in ("local/x.dat", "../x.dat", "version.ini", ".version.ini.tmp"):
        crafted = Manifest.create([FileEntry(bad, 0, ())])
        with pytest.raises(UnsafeDownloadPath):
            DownloadFiles(tmp_path / "other", crafted)


def test_remove_payload_deletes_exactly_the_download(manifest: Manifest, tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    (dest / "local").mkdir(parents=True)
    (dest / "local" / "save.dat").write_bytes(b"keep")
    (dest / "notes.txt").write_bytes(b"keep too")
    files = DownloadFiles(dest, manifest)
    files.pwrite("pak0.eti", 0, b"partial")
    files.remove_payload()
    assert sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*")) == [
        "local",
        "local/save.dat",
        "notes.txt",
    ]
    files.remove_payload()  # twice is fine
