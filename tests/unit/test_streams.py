"""The control endpoint's streams: no asyncio error when a read is cancelled as data arrives.

The race behind an intermittent ``Exception in callback Future.set_result(None)
... InvalidStateError`` after ``lanspread update``: a task waiting to read is
cancelled in the very loop turn in which the socket turns readable. The tests
force that interleaving on asyncio's loop: the other end writes, the test task
yields once (so it runs first in the next turn, before the socket's readiness
callback), and cancels the reader then.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest

from lanspread_core.system import portable
from lanspread_core.system.portable import connect_private, listen_private
from lanspread_core.system.streams import accepting


async def _cancel_as_data_arrives(
    stream: anyio.abc.ByteStream, other: socket.socket
) -> list[dict[str, Any]]:
    """What the loop reported while a read on ``stream`` was cancelled as ``other`` wrote."""
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    async with anyio.create_task_group() as tg:

        async def read() -> None:
            await stream.receive()

        tg.start_soon(read)
        for _ in range(3):  # the reader is now waiting on the socket
            await asyncio.sleep(0)
        other.send(b"x")
        await asyncio.sleep(0)  # next turn: this task first, then the socket's readiness
        tg.cancel_scope.cancel()
    for _ in range(3):  # let any late callback run
        await asyncio.sleep(0)
    await stream.aclose()
    return reported


@pytest.fixture(params=["unix", "loopback-tcp"])
def endpoint(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "loopback-tcp":
        monkeypatch.setattr(portable, "HAS_UNIX_SOCKETS", False)
    elif not portable.HAS_UNIX_SOCKETS:
        pytest.skip("this OS has no Unix sockets")
    return str(request.param)


def test_client_read_cancelled_as_the_peer_writes(tmp_path: Path, endpoint: str) -> None:
    private = listen_private(tmp_path / "control.sock")

    async def main() -> list[dict[str, Any]]:
        stream = await connect_private(private.path)
        peer_side, _ = private.sock.accept()
        with peer_side:
            if private.token is not None:
                assert peer_side.recv(1024) == private.token + b"\n"
            return await _cancel_as_data_arrives(stream, peer_side)

    try:
        assert anyio.run(main, backend="asyncio") == []
    finally:
        private.close()


def test_session_read_cancelled_as_the_client_writes(tmp_path: Path, endpoint: str) -> None:
    private = listen_private(tmp_path / "control.sock")
    tcp = private.token is not None
    family, address = (
        (socket.AF_INET, private.sock.getsockname()) if tcp else (socket.AF_UNIX, str(private.path))
    )

    async def main() -> list[dict[str, Any]]:
        async with accepting(private.sock) as connections:
            with socket.socket(family, socket.SOCK_STREAM) as client:
                client.connect(address)
                stream = await connections.receive()
                return await _cancel_as_data_arrives(stream, client)

    try:
        assert anyio.run(main, backend="asyncio") == []
    finally:
        private.close()


def test_streams_end_break_and_close_as_anyio_streams_do(tmp_path: Path) -> None:
    private = listen_private(tmp_path / "control.sock")

    async def main() -> None:
        async with accepting(private.sock) as connections:
            client = await connect_private(private.path)
            server = await connections.receive()
            if private.token is not None:
                assert await server.receive() == private.token + b"\n"
            await client.send(b"hello\n")
            assert await server.receive() == b"hello\n"
            await client.send_eof()
            with pytest.raises(anyio.EndOfStream):
                await server.receive()
            await server.send(b"still open one way\n")
            assert await client.receive() == b"still open one way\n"
            await server.aclose()
            with pytest.raises(anyio.ClosedResourceError):
                await server.receive()
            with pytest.raises(anyio.EndOfStream):
                await client.receive()
            with pytest.raises(anyio.BrokenResourceError):
                await client.send(b"after its own end")
            await client.aclose()
            # a client whose peer has gone: its writes fail as a broken stream
            client = await connect_private(private.path)
            await (await connections.receive()).aclose()
            with pytest.raises(anyio.BrokenResourceError):
                for _ in range(100):  # the first sends may land in buffers
                    await client.send(b"x" * 65536)
            await client.aclose()

    try:
        anyio.run(main, backend="asyncio")
    finally:
        private.close()
