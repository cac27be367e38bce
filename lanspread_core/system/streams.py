"""Byte streams on asyncio transports, for the local control endpoint.

anyio 4 drives a Unix socket on asyncio through the raw socket: a pending
``receive`` (and ``accept``) waits on a future that a selector callback
resolves with ``Future.set_result(None)``. When the waiting task is cancelled
in the same loop turn as the socket turns readable, that callback runs on the
cancelled future and asyncio logs ``Exception in callback
Future.set_result(None) ... InvalidStateError: invalid state``. A client
stopping its reader as the peer's next event arrives hit it in about one
``lanspread update`` in eight; a session the peer ends as a client writes, in
the peer's log. asyncio's own transports and ``StreamReader`` wake a waiter
only if it is not cancelled, so both ends of the control endpoint sit on them:
:func:`open_stream` and :func:`accepting` hand out :class:`TransportStream`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import anyio
import anyio.abc

#: Seconds ``aclose`` lets a closing stream flush before it is aborted.
CLOSE_TIMEOUT = 1.0
#: Connections accepted but not yet taken by the caller, before more are refused.
ACCEPT_BACKLOG = 64


class TransportStream(anyio.abc.ByteStream):
    """An anyio byte stream over an asyncio ``StreamReader``/``StreamWriter`` pair."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._closed = False
        self._eof_sent = False

    async def receive(self, max_bytes: int = 65536) -> bytes:
        if self._closed:
            raise anyio.ClosedResourceError
        try:
            data = await self._reader.read(max_bytes)
        except OSError as exc:
            raise anyio.BrokenResourceError from exc
        if self._closed:
            raise anyio.ClosedResourceError
        if not data:
            raise anyio.EndOfStream
        return data

    async def send(self, item: bytes) -> None:
        if self._closed:
            raise anyio.ClosedResourceError
        if self._writer.is_closing() or self._eof_sent:
            raise anyio.BrokenResourceError
        self._writer.write(item)
        try:
            await self._writer.drain()
        except OSError as exc:
            raise anyio.BrokenResourceError from exc

    async def send_eof(self) -> None:
        if not self._writer.is_closing() and not self._eof_sent:
            self._eof_sent = True
            self._writer.write_eof()

    async def aclose(self) -> None:
        """Close; what was sent is flushed for a moment, even when cancelled, then dropped."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        flushed = False
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_TIMEOUT):
            with contextlib.suppress(OSError):  # the connection broke: closed all the same
                await self._writer.wait_closed()
            flushed = True
        if not flushed:  # the other end stopped reading
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once, unsent data with it."""
        self._closed = True
        self._writer.transport.abort()


async def open_stream(address: str | tuple[str, int]) -> TransportStream:
    """Connect to a Unix socket path or a ``(host, port)`` TCP address."""
    if isinstance(address, str):
        reader, writer = await asyncio.open_unix_connection(address)
    else:
        reader, writer = await asyncio.open_connection(*address)
    return TransportStream(reader, writer)


@contextlib.asynccontextmanager
async def accepting(
    sock: socket.socket,
) -> AsyncIterator[anyio.abc.ObjectReceiveStream[TransportStream]]:
    """Accept on the listening ``sock`` while inside; each connection arrives as a stream.

    asyncio accepts from a selector callback, with no future to race. Leaving
    stops accepting and closes ``sock`` and every connection not taken.
    """
    send, receive = anyio.create_memory_object_stream[TransportStream](ACCEPT_BACKLOG)

    def connected(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            send.send_nowait(TransportStream(reader, writer))
        except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
            writer.transport.abort()

    server = await asyncio.start_server(connected, sock=sock)
    try:
        yield receive
    finally:
        server.close()
        send.close()
        with contextlib.suppress(anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            while True:
                receive.receive_nowait().abort()
        receive.close()
