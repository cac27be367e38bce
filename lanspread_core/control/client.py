"""The control-plane client: one connection to a peer, one stream per request."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self

import anyio
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import (
    ConnectionTerminated,
    HandshakeCompleted,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)

from lanspread_core.control.config import (
    CLIENT_MAX_IN_FLIGHT,
    CLOSE_TIMEOUT,
    CONNECT_TIMEOUT,
    IDLE_TIMEOUT,
    REQUEST_TIMEOUT,
    client_configuration,
)
from lanspread_core.control.errors import PeerError, PeerUnreachable
from lanspread_core.control.identity import Identity
from lanspread_core.control.tlspeer import proven_peer_id
from lanspread_core.wire.errors import WireError
from lanspread_core.wire.framing import OneFrame
from lanspread_core.wire.messages import Error, Message, encode_message, parse_message

#: QUIC application error code for abandoning a request (timeout, cancel).
STOP_CANCELLED = 0x2
_BIG_PAYLOAD = 256 * 1024
_MAX_PEER_TEXT = 300

Address = tuple[str, int]


class ControlClient:
    """An open control-plane connection to one peer.

    Get one with :meth:`connect`; close it with :meth:`close` (or use it as
    an async context manager). :meth:`request` may be called from many tasks
    at once: each request gets its own bidirectional stream.

    Both ends prove their key in the handshake (mutual TLS, :mod:`.tlspeer`):
    :attr:`peer_id` is the id the server's key proves, and an answer that
    claims another ``peer_id`` is refused as a :class:`PeerError` (code
    ``identity``). Given an ``identity``, the client presents its certificate,
    so the server knows whom it answers; without one it is anonymous, and the
    server refuses any request that claims a ``peer_id``.
    """

    def __init__(
        self,
        protocol: _ClientProtocol,
        transport: asyncio.DatagramTransport,
        address: Address,
    ) -> None:
        self._protocol = protocol
        self._transport = transport
        self._address = address
        self._label = _label(address)
        self._slots = anyio.Semaphore(CLIENT_MAX_IN_FLIGHT)
        self._closed = False
        #: the peer id the server's key proved in the handshake (set by :meth:`connect`)
        self.peer_id = ""

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        identity: Identity | None = None,
    ) -> Self:
        """Open a QUIC connection to ``host:port`` and finish the handshake,
        presenting ``identity``'s certificate (or none: an anonymous client).

        The connection closes itself after ``idle_timeout`` seconds without
        hearing from the peer (the lower of both sides' values applies).

        :raises PeerUnreachable: the name does not resolve, or no handshake
            within ``timeout`` seconds, or the peer refused it.
        """
        label = _label((host, port))
        loop = asyncio.get_running_loop()
        try:
            with anyio.fail_after(timeout):
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            raise PeerUnreachable(f"cannot resolve the peer address {label} ({exc})") from None
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.bind(("::", 0) if family == socket.AF_INET6 else ("0.0.0.0", 0))
            quic = QuicConnection(
                configuration=client_configuration(host, identity, idle_timeout=idle_timeout)
            )
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _ClientProtocol(quic, label=label), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        client = cls(protocol, transport, (host, port))
        try:
            protocol.connect(addr)
            with anyio.fail_after(timeout):
                await protocol.handshake_done.wait()
            if protocol.close_reason is not None:
                raise PeerUnreachable(
                    f"the peer at {label} refused the connection ({protocol.close_reason})"
                )
            client.peer_id = proven_peer_id(quic) or ""
            if not client.peer_id:
                raise PeerUnreachable(f"the peer at {label} proved no key in the handshake")
        except TimeoutError:
            await client.close()
            raise PeerUnreachable(
                f"the peer at {label} did not answer within {timeout:g} s"
            ) from None
        except BaseException:
            await client.close()
            raise
        return client

    @property
    def address(self) -> Address:
        return self._address

    @property
    def is_closed(self) -> bool:
        """Closed by us, by the peer, or by the idle timeout."""
        return self._closed or self._protocol.close_reason is not None

    async def request(self, message: Message, *, timeout: float = REQUEST_TIMEOUT) -> Message:
        """Send one request on a new stream and return the peer's reply.

        The reply is one of ``message.REPLIES`` (never an Error: that raises).
        ``timeout`` covers waiting for a free stream slot as well.

        :raises PeerUnreachable: connection closed or lost, or no reply in time.
        :raises PeerError: the peer answered with an Error, or with something
            that is not a valid answer to ``message``.
        """
        if not message.is_request():
            raise ValueError(f"{message.TYPE} is not a request")
        if self._closed:
            raise PeerUnreachable(f"the connection to {self._label} is closed")
        payload = encode_message(message)
        with anyio.move_on_after(timeout):
            async with self._slots:
                raw = await self._protocol.exchange(payload)
            return await self._interpret(message, raw)
        raise PeerUnreachable(
            f"the peer at {self._label} did not answer {message.TYPE} within {timeout:g} s"
        )

    async def close(self) -> None:
        """Close the connection (bounded in time, safe to call twice or when cancelled)."""
        if self._closed:
            return
        self._closed = True
        self._protocol.fail_all(PeerUnreachable(f"the connection to {self._label} was closed"))
        self._protocol.close()  # sends CONNECTION_CLOSE now
        if self._protocol.handshake_done.is_set():  # else there is no one to wait for
            with anyio.move_on_after(CLOSE_TIMEOUT, shield=True):
                await self._protocol.wait_closed()
        self._transport.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def _interpret(self, request: Message, raw: bytes) -> Message:
        try:
            if len(raw) >= _BIG_PAYLOAD:
                reply = await anyio.to_thread.run_sync(parse_message, raw)
            else:
                reply = parse_message(raw)
        except WireError as exc:
            raise PeerError(
                f"the peer at {self._label} sent a bad answer to {request.TYPE}: {exc}",
                code="protocol",
            ) from None
        if isinstance(reply, Error):
            text = " ".join(reply.message.split())[:_MAX_PEER_TEXT]  # one line, bounded
            raise PeerError(
                f"the peer at {self._label} answered {request.TYPE} with an error"
                f" ({reply.code[:40]}): {text}",
                code=reply.code,
            )
        if not request.accepts_reply(reply):
            raise PeerError(
                f"the peer at {self._label} answered {request.TYPE} with {reply.TYPE}",
                code="protocol",
            )
        claimed = getattr(reply, "peer_id", None)
        if isinstance(claimed, str) and claimed != self.peer_id:
            raise PeerError(
                f"the peer at {self._label} claims peer id {claimed[:8]}, but its key"
                f" proves {self.peer_id[:8]}; not trusting it",
                code="identity",
            )
        return reply


class ControlPool:
    """Open :class:`ControlClient` connections by address, reopened when they die.

    Connecting to one address never waits for another; concurrent callers for
    the same address share one connection attempt.
    """

    def __init__(
        self,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_timeout: float = IDLE_TIMEOUT,
        identity: Identity | None = None,
    ) -> None:
        self._connect_timeout = connect_timeout
        self._idle_timeout = idle_timeout
        self._identity = identity
        self._clients: dict[Address, ControlClient] = {}
        self._locks: dict[Address, anyio.Lock] = {}
        self._closed = False

    async def get(self, host: str, port: int) -> ControlClient:
        """The open connection to ``host:port``, connecting if there is none.

        :raises PeerUnreachable: as :meth:`ControlClient.connect`.
        """
        address = (host, port)
        lock = self._locks.setdefault(address, anyio.Lock())
        async with lock:
            if self._closed:
                raise PeerUnreachable("the control connection pool is closed")
            client = self._clients.get(address)
            if client is not None and not client.is_closed:
                return client
            if client is not None:
                await client.close()
            client = await ControlClient.connect(
                host,
                port,
                timeout=self._connect_timeout,
                idle_timeout=self._idle_timeout,
                identity=self._identity,
            )
            self._clients[address] = client
            return client

    async def request(
        self,
        host: str,
        port: int,
        message: Message,
        *,
        timeout: float = REQUEST_TIMEOUT,
        expect: str | None = None,
    ) -> Message:
        """:meth:`ControlClient.request` on the pooled connection to ``host:port``.

        :raises PeerError: (code ``identity``) ``expect`` is given and the key
            at that address proves another peer id: someone else answers there.
        """
        client = await self.get(host, port)
        if expect is not None and client.peer_id != expect:
            raise PeerError(
                f"the peer at {client.address[0]}:{client.address[1]} is {client.peer_id[:8]}"
                f" by its key, not {expect[:8]}; not asking it",
                code="identity",
            )
        return await client.request(message, timeout=timeout)

    async def discard(self, host: str, port: int) -> None:
        """Close and forget the connection to ``host:port`` (a peer left)."""
        client = self._clients.pop((host, port), None)
        self._locks.pop((host, port), None)
        if client is not None:
            await client.close()

    async def aclose(self) -> None:
        """Close every connection; the pool refuses new ones afterwards."""
        self._closed = True
        clients, self._clients = list(self._clients.values()), {}
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for client in clients:
                    tg.start_soon(client.close)


@dataclass
class _Pending:
    frame: OneFrame = field(default_factory=lambda: OneFrame("answer"))
    done: anyio.Event = field(default_factory=anyio.Event)
    payload: bytes | None = None
    error: BaseException | None = None

    def finish(self, payload: bytes | None = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.payload, self.error = payload, error
            self.done.set()


class _ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, label: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._label = label
        self._pending: dict[int, _Pending] = {}
        self.handshake_done = anyio.Event()
        self.close_reason: str | None = None

    async def exchange(self, payload: bytes) -> bytes:
        """Send ``payload`` on a new stream; return the reply frame's payload."""
        if self.close_reason is not None:
            raise PeerUnreachable(f"the connection to {self._label} closed ({self.close_reason})")
        stream_id = self._quic.get_next_available_stream_id()
        pending = self._pending[stream_id] = _Pending()
        try:
            self._quic.send_stream_data(stream_id, payload, end_stream=True)
            self.transmit()
            await pending.done.wait()
        finally:
            del self._pending[stream_id]
            if not pending.done.is_set():
                self._abandon(stream_id)
        if pending.error is not None:
            raise pending.error
        assert pending.payload is not None
        return pending.payload

    def fail_all(self, error: BaseException) -> None:
        for pending in self._pending.values():
            pending.finish(error=error)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            pending = self._pending.get(event.stream_id)
            if pending is not None:  # else: a late answer to an abandoned request
                self._on_data(event, pending)
        elif isinstance(event, StreamReset):
            pending = self._pending.get(event.stream_id)
            if pending is not None:
                pending.finish(
                    error=PeerError(
                        f"the peer at {self._label} reset a request stream", code="protocol"
                    )
                )
        elif isinstance(event, HandshakeCompleted):
            self.handshake_done.set()
        elif isinstance(event, ConnectionTerminated):
            self.close_reason = event.reason_phrase or f"QUIC error {event.error_code}"
            self.handshake_done.set()
            self.fail_all(
                PeerUnreachable(f"the connection to {self._label} closed ({self.close_reason})")
            )

    def _on_data(self, event: StreamDataReceived, pending: _Pending) -> None:
        try:
            payload = pending.frame.feed(event.data, event.end_stream)
        except WireError as exc:
            pending.finish(
                error=PeerError(
                    f"the peer at {self._label} sent a bad answer: {exc}", code=exc.code
                )
            )
            self._abandon(event.stream_id)
            return
        if payload is not None:
            pending.finish(payload=payload)

    def _abandon(self, stream_id: int) -> None:
        """Tell the peer to stop working on (and sending) this request."""
        if self.close_reason is not None:
            return
        try:
            self._quic.stop_stream(stream_id, STOP_CANCELLED)
            self._quic.reset_stream(stream_id, STOP_CANCELLED)
        except ValueError:
            return  # already finished and discarded
        self.transmit()


def _label(address: Address) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
