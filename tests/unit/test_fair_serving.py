"""Fair and bounded serving: send slots by peer, the minimum rate, connection
caps, the frame budget, bounded open files, refusals said once a while.

The data-plane cases run a real ``serve_data`` on loopback with real sockets;
the rules' own cases use a fake clock.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from lanspread_core.control.budget import FrameBudget, Ledger
from lanspread_core.dataplane.admission import Admission, ConnectionRefused
from lanspread_core.dataplane.client import fetch_ranges
from lanspread_core.dataplane.files import DownloadFiles
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.pace import Pace, Pacing, TooSlow
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.slots import FairSlots
from lanspread_core.dataplane.tokens import TransferTokens
from lanspread_core.library.layout import UnsafeDownloadPath
from lanspread_core.library.manifest import build_manifest, chunk_ranges
from lanspread_core.system.ratelog import OncePer
from lanspread_core.wire.dataplane import encode_request, parse_status
from lanspread_core.wire.messages import ByteRange

GAME = "quake"
SLOW, FAST = "a" * 32, "b" * 32
CHUNK = 64 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


# ------------------------------------------------------------------ slots


@pytest.mark.anyio
async def test_a_peer_alone_may_hold_every_slot() -> None:
    slots = FairSlots(4)
    async with (
        slots.slot(SLOW),
        slots.slot(SLOW),
        slots.slot(SLOW),
        slots.slot(SLOW),
    ):
        assert slots.held(SLOW) == 4 and slots.waiting == 0


@pytest.mark.anyio
async def test_a_freed_slot_goes_to_the_waiting_peer_holding_fewest() -> None:
    slots = FairSlots(4, min_share=1)
    order: list[str] = []
    release = anyio.Event()

    async def hold(peer: str, started: anyio.Event | None = None) -> None:
        async with slots.slot(peer):
            order.append(peer)
            if started is not None:
                started.set()
            await release.wait()

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            first = anyio.Event()
            tg.start_soon(hold, SLOW, first)
            await first.wait()
        for _ in range(3):  # the slow peer asks for more: they wait
            tg.start_soon(hold, SLOW)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(hold, FAST)
        await anyio.wait_all_tasks_blocked()
        assert slots.waiting == 4 and slots.share() == 2
        release.set()
    # the fast peer waited last but was served first: it held none
    assert order[:5] == [SLOW] * 4 + [FAST]


@pytest.mark.anyio
async def test_a_peer_over_its_share_waits_while_a_slot_is_free() -> None:
    slots = FairSlots(4)
    done = anyio.Event()

    async def fast_holds_two() -> None:
        async with slots.slot(FAST), slots.slot(FAST):
            await done.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(fast_holds_two)
        await anyio.wait_all_tasks_blocked()
        async with slots.slot(SLOW), slots.slot(SLOW):
            # two peers: a share of 2 each, so a third slot of SLOW waits
            with anyio.move_on_after(0.2) as scope:
                async with slots.slot(SLOW):
                    pass
            assert scope.cancelled_caught
            assert slots.waiting == 0  # the cancelled waiter left the queue
        done.set()
    assert slots.held(SLOW) == slots.held(FAST) == 0


@pytest.mark.anyio
async def test_a_peer_between_two_grants_still_counts_for_a_while() -> None:
    clock = Clock()
    slots = FairSlots(4, recent=2.0, clock=clock)
    async with slots.slot(FAST):
        pass
    async with slots.slot(SLOW):
        # FAST released its slot an instant ago: SLOW may hold only its half
        assert slots.share() == 2
        clock.now += 2.5
        assert slots.share() == 4


# ------------------------------------------------------------------ pace


def test_a_slow_receiver_is_cut_only_past_the_grace_and_while_others_wait() -> None:
    clock, waiting = Clock(), [False]
    pace = Pace(30, lambda: waiting[0], Pacing(256_000, 5, 5), clock=clock)
    pace.sent(4_000_000)  # the socket buffers swallow a burst
    for _ in range(9):
        clock.now += 1
        pace.sent(64 * 1024)
        pace.check()  # nobody waits: a slow receiver harms no one
    waiting[0] = True
    with pytest.raises(TooSlow, match="kB/s"):
        pace.check()


def test_a_fast_receiver_is_never_cut_and_a_stalled_one_always_is() -> None:
    clock = Clock()
    pace = Pace(3, lambda: True, Pacing(256_000, 5, 5), clock=clock)
    for _ in range(20):
        clock.now += 0.5
        pace.sent(1_000_000)
        pace.check()
    clock.now += 3.5
    with pytest.raises(TooSlow, match="took nothing for 3 s"):
        pace.check()


def test_the_grace_covers_a_slow_start() -> None:
    clock = Clock()
    pace = Pace(30, lambda: True, Pacing(256_000, 5, 5), clock=clock)
    clock.now += 4.9
    pace.check()
    clock.now += 0.2
    with pytest.raises(TooSlow):
        pace.check()


# ------------------------------------------------------------------ admission


def test_connection_caps_per_address_per_peer_and_in_all() -> None:
    adm = Admission(total=5, pending_per_address=2, per_peer=2)
    a1, a2 = adm.enter("10.0.0.1"), adm.enter("10.0.0.1")
    with pytest.raises(ConnectionRefused) as exc:
        adm.enter("10.0.0.1")
    assert exc.value.cause == "address"
    adm.identify(a1, SLOW)  # no longer pending: the address may open another
    a3 = adm.enter("10.0.0.1")
    adm.identify(a2, SLOW)
    with pytest.raises(ConnectionRefused) as exc:
        adm.identify(a3, SLOW)
    assert exc.value.cause == "peer"
    b1, b2 = adm.enter("10.0.0.2"), adm.enter("10.0.0.3")
    with pytest.raises(ConnectionRefused) as exc:
        adm.enter("10.0.0.4")
    assert exc.value.cause == "total"
    for ticket in (a1, a2, a3, b1, b2):
        adm.leave(ticket)
    assert adm.live == 0
    adm.enter("10.0.0.1")


def test_a_refusal_is_said_once_per_interval_and_key() -> None:
    clock = Clock()
    once = OncePer(60, max_keys=4, clock=clock)
    assert once(("total", "x")) and not once(("total", "x")) and once(("total", "y"))
    clock.now += 61
    assert once(("total", "x"))
    for i in range(10):  # bounded memory: old keys are forgotten
        once(i)
    assert len(once._said) <= 4


# ------------------------------------------------------------------ frame budget


@pytest.mark.anyio
async def test_the_frame_budget_bounds_each_connection_and_all() -> None:
    budget = FrameBudget(total=10, per_connection=6, deadline=60)
    refused: list[tuple[str, int, str]] = []
    a = Ledger(budget, lambda sid, code, why: refused.append(("a", sid, code)))
    b = Ledger(budget, lambda sid, code, why: refused.append(("b", sid, code)))
    assert a.add(0, 4) is None and a.add(4, 2) is None
    assert a.add(8, 1) is not None  # over this connection's share
    assert b.add(0, 3) is None and budget.used == 9
    # over the total: the biggest unfinished stream anywhere makes room
    assert b.add(4, 2) is None
    assert refused == [("a", 0, "busy")] and budget.used == 7
    # a stream that would itself be the biggest is the one refused
    assert b.add(0, 5) is not None and budget.used == 7
    a.close()
    b.close()
    assert budget.used == 0 and not budget.ledgers


@pytest.mark.anyio
async def test_a_stream_that_does_not_complete_in_time_is_refused() -> None:
    budget = FrameBudget(deadline=0.05)
    refused: list[tuple[int, str]] = []
    ledger = Ledger(budget, lambda sid, code, why: refused.append((sid, code)))
    ledger.add(0, 10)
    ledger.add(4, 10)
    ledger.complete(4)
    await anyio.sleep(0.2)
    assert refused == [(0, "timeout")] and budget.used == 10


# ------------------------------------------------------------------ open files


def test_a_download_keeps_a_bounded_set_of_files_open(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    data = {f"d/f{i:05}.bin": os.urandom(1000 + i) for i in range(300)}
    for path, body in data.items():
        (src / path).write_bytes(body)
    manifest = build_manifest(src, chunk_size=CHUNK)
    dest = tmp_path / "dest"
    dest.mkdir()
    files = DownloadFiles(dest, manifest, max_open=8)
    try:
        assert files.open_count <= 8
        for path, body in reversed(data.items()):
            files.pwrite(path, 0, body)
            assert files.open_count <= 8
        files.pwrite("d/f00000.bin", 0, data["d/f00000.bin"])
    finally:
        files.close()
    for path, body in data.items():
        assert (dest / path).read_bytes() == body


def test_a_reopened_file_is_never_reached_through_a_planted_link(tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    for i in range(3):
        (src / f"d/f{i}.bin").write_bytes(b"x" * 100)
    dest = tmp_path / "dest"
    dest.mkdir()
    files = DownloadFiles(dest, build_manifest(src, chunk_size=CHUNK), max_open=1)
    try:
        files.pwrite("d/f2.bin", 0, b"y" * 100)  # d/f0.bin is evicted by now
        outside = tmp_path / "outside"
        outside.write_bytes(b"o" * 100)
        (dest / "d/f0.bin").unlink()
        (dest / "d/f0.bin").symlink_to(outside)
        with pytest.raises(UnsafeDownloadPath):
            files.pwrite("d/f0.bin", 0, b"z" * 100)
    finally:
        files.close()
    assert outside.read_bytes() == b"o" * 100


# ------------------------------------------------------------------ the server


@asynccontextmanager
async def _server(root: Path, tokens: TransferTokens, **kwargs: object) -> AsyncIterator[int]:
    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(
            lambda task_status: serve_data(
                "127.0.0.1",
                0,
                tokens,
                lambda grant: root,
                OutboundTransfers(),
                task_status=task_status,
                **kwargs,
            )
        )
        try:
            yield endpoint.port
        finally:
            tg.cancel_scope.cancel()


def _slow_reader(port: int, token: str) -> socket.socket:
    """A receiver that asks for its grant and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(encode_request(token))
    return sock


def _status(sock: socket.socket) -> str | None:
    sock.settimeout(10)
    head = sock.recv(4, socket.MSG_WAITALL)
    (length,) = struct.unpack(">I", head)
    return parse_status(sock.recv(length, socket.MSG_WAITALL))


@pytest.mark.anyio
async def test_slow_readers_holding_every_slot_are_cut_so_another_peer_is_served(
    tmp_path: Path,
) -> None:
    body = os.urandom(8 << 20)
    (tmp_path / "big.bin").write_bytes(body)
    tokens = TransferTokens()
    everything = (ByteRange("big.bin", 0, len(body)),)
    pacing = Pacing(min_rate=256_000, window=0.5, grace=0.5)
    # a stall timeout far past the bound below: only the minimum rate frees the slots
    async with _server(tmp_path, tokens, max_sends=2, pacing=pacing, stall_timeout=600) as port:
        slow = [_slow_reader(port, tokens.issue(GAME, SLOW, everything)) for _ in range(4)]
        try:
            manifest = build_manifest(tmp_path, chunk_size=1 << 20)
            dest = tmp_path / "out"
            dest.mkdir()
            files = DownloadFiles(dest, manifest)
            jobs = chunk_ranges(manifest)
            token = tokens.issue(GAME, FAST, [ByteRange(j.path, j.offset, j.length) for j in jobs])
            results: list[bool] = []

            def fetch() -> None:
                fetch_ranges(
                    "127.0.0.1",
                    port,
                    token,
                    chunk_ranges(manifest),
                    files,
                    cancel=threading.Event(),
                    timeout=20,  # waiting longer for a slot fails the fetch
                    on_chunk=lambda job, ok: results.append(ok),
                )

            with anyio.fail_after(60):  # a hang becomes a failure, not a measure
                await anyio.to_thread.run_sync(fetch)
            files.close()
        finally:
            for sock in slow:
                sock.close()
    assert results and all(results)
    assert (dest / "big.bin").read_bytes() == body


@pytest.mark.anyio
async def test_idle_connections_over_the_cap_are_refused_at_once_and_the_rest_time_out(
    tmp_path: Path,
) -> None:
    tokens = TransferTokens()
    adm = Admission(pending_per_address=3)
    async with _server(tmp_path, tokens, admission=adm, first_request_timeout=0.5) as port:
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        over = socket.create_connection(("127.0.0.1", port))
        try:
            error = await anyio.to_thread.run_sync(_status, over)
            assert error is not None and error.startswith("busy:"), error
            for sock in idle:  # closed by the server within its first-request timeout
                sock.settimeout(10)
                assert await anyio.to_thread.run_sync(sock.recv, 100) == b""
            with anyio.fail_after(10):
                while adm.live:
                    await anyio.sleep(0.05)
        finally:
            for sock in [*idle, over]:
                sock.close()
