"""The attacks of issue 15 as reusable pieces, for the attack suite and its benchmark.

Each ``*_attack`` function returns an :data:`Attack`: a coroutine function
``attack(stop, ready)`` that runs on an event loop of its own (see
:func:`attacking`), sets ``ready`` once it bites, and returns what it saw
when ``stop`` is set.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, contextmanager
from pathlib import Path
from typing import Any

import anyio

from lanspread_core.system.portable import raise_open_files_limit
from support.rogue import data_connect, rogue_control, rogue_identity, slow_reader

MiB = 1 << 20
#: ``attack(stop, ready)``: runs until ``stop`` is set; sets ``ready`` once it bites
Attack = Callable[[threading.Event, threading.Event], Awaitable[Any]]


@contextmanager
def attacking(attack: Attack, *, ready_within: float = 120) -> Iterator[list[Any]]:
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
        assert ready.wait(ready_within), "the attack never got going"
        if errors:
            raise errors[0]
        yield result
    finally:
        stop.set()
        thread.join(60)
    assert not thread.is_alive(), "the attack did not stop"
    if errors:
        raise errors[0]


async def until(stop: threading.Event) -> None:
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


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


def decoy_ranges(root: Path, count: int) -> list[tuple[str, int, int]]:
    """``count`` 1 MiB ranges (path, offset, length) of the biggest file of a game root."""
    big = max((p for p in root.iterdir() if p.is_file()), key=lambda p: p.stat().st_size)
    size = big.stat().st_size
    return [(big.name, (i * MiB) % (size - MiB), MiB) for i in range(count)]


def slow_readers_attack(
    state: Path, control: str, data_port: int, game: str, root: Path, count: int = 64
) -> Attack:
    """``count`` grants of 16 MiB each (more than socket buffers take at once),
    each received by a reader that takes 64 KiB every 20 s. Ready once 32 of
    them are being served (every send slot of the victim). Returns the count."""
    host, port = host_port(control)
    ranges = decoy_ranges(root, 16)

    async def attack(stop: threading.Event, ready: threading.Event) -> int:
        async with rogue_control(rogue_identity(state), host, port) as rogue:
            tokens = []
            for _ in range(count):
                reply = await rogue.grant(game, ranges)
                assert reply["type"] == "TransferGrant", reply
                tokens.append(reply["token"])
        served = Counted(min(32, count), ready)
        with ThreadPoolExecutor(len(tokens)) as pool:
            futures = [
                pool.submit(slow_reader, host, data_port, t, stop.is_set, served.add)
                for t in tokens
            ]
            await until(stop)
            for f in futures:
                f.result()
        return len(tokens)

    return attack


def token_flood_attack(
    state: Path, control: str, game: str, root: Path, workers: int = 16
) -> Attack:
    """``workers`` tasks asking ``OpenTransfer`` back to back, never redeeming.
    Ready once the victim answers ``busy``. Returns the answers by code."""
    host, port = host_port(control)
    ranges = decoy_ranges(root, 256)

    async def attack(stop: threading.Event, ready: threading.Event) -> dict[str, int]:
        answers: dict[str, int] = {}
        async with rogue_control(rogue_identity(state), host, port) as rogue:

            async def ask(first: int) -> None:
                i = first
                while not stop.is_set():
                    reply = await rogue.grant(game, [ranges[i % len(ranges)]])
                    key = reply.get("code", reply["type"])
                    answers[key] = answers.get(key, 0) + 1
                    if key == "busy":  # the victim's table is full
                        ready.set()
                    i += workers

            async with anyio.create_task_group() as tg:
                for first in range(workers):
                    tg.start_soon(ask, first)
        return answers

    return attack


def idle_connections_attack(data_port: int, count: int = 1100) -> Attack:
    """``count`` data connections that never send a request, reopened as the
    victim closes them. Ready once ``count`` were opened. Returns how many."""

    raise_open_files_limit()  # the attacker holds the connections too

    async def attack(stop: threading.Event, ready: threading.Event) -> int:
        def hold() -> int:
            socks: list[socket.socket] = []
            opened = 0
            while not stop.is_set():
                socks = [s for s in socks if _held(s)]
                while len(socks) < count and not stop.is_set():
                    try:
                        socks.append(data_connect("127.0.0.1", data_port))
                        opened += 1
                    except OSError:
                        break
                if opened >= count:
                    ready.set()
                stop.wait(0.2)
            for s in socks:
                s.close()
            return opened

        return await anyio.to_thread.run_sync(hold)

    return attack


def _held(sock: socket.socket) -> bool:
    """Whether the server still holds this connection (peeking, not reading)."""
    try:
        sock.setblocking(False)
        if sock.recv(1, socket.MSG_PEEK) == b"":
            sock.close()
            return False
        return True
    except BlockingIOError:
        return True
    except OSError:
        sock.close()
        return False
    finally:
        if sock.fileno() != -1:
            sock.setblocking(True)


def unfinished_frames_attack(
    state: Path,
    control: str,
    *,
    connections: int = 4,
    streams: int = 32,
    declared: int = 8 * MiB,
    send: int = 2 * MiB,
) -> Attack:
    """``connections`` QUIC connections, each opening ``streams`` request
    streams that declare a ``declared``-byte frame and send ``send`` bytes of
    it, never the end (by default 256 MiB the victim would hold without a
    budget). Ready once all is sent or refused. Returns the victim's refusals."""
    host, port = host_port(control)

    async def attack(stop: threading.Event, ready: threading.Event) -> list[str]:
        identity = rogue_identity(state)
        async with AsyncExitStack() as stack:
            rogues = [
                await stack.enter_async_context(rogue_control(identity, host, port))
                for _ in range(connections)
            ]
            for rogue in rogues:
                rogue.start_unfinished(streams, declared, send)
            with anyio.fail_after(120):  # all sent, or refused by the victim
                while any(r.unsent() for r in rogues) and not stop.is_set():
                    for r in rogues:
                        r.protocol.transmit()
                    await anyio.sleep(0.2)
            refusals = [m for r in rogues for m in r.refusal_messages()]
            ready.set()
            await until(stop)
        return refusals

    return attack
