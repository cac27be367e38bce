"""The control-plane server: one request per bidirectional QUIC stream.

The connection protocol works on bytes only, inside aioquic's callbacks: it
collects each stream's single frame until the client ends the stream and
rejects at once what can never become a request (a frame over the cap, a
second frame, too many streams in flight). Complete requests go through a
queue to :func:`serve_control`, which runs each in its own task in its own
task group: decode, call the handler, send the reply with the stream's FIN.
Each such task also has a cancel scope that the connection cancels when the
client stops the stream or the connection ends, and the task group takes all
of them down when the server stops. Nothing is spawned detached.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, NamedTuple

import anyio
import anyio.abc
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StopSendingReceived,
    StreamDataReceived,
    StreamReset,
)

from lanspread_core.control.admission import CappedQuicServer
from lanspread_core.control.budget import FrameBudget, Ledger
from lanspread_core.control.config import (
    IDLE_TIMEOUT,
    MAX_STREAMS_PER_CONNECTION,
    server_configuration,
)
from lanspread_core.control.errors import ListenError
from lanspread_core.control.identity import Identity
from lanspread_core.control.tlspeer import ask_for_client_certificate, proven_peer_id
from lanspread_core.wire.errors import FrameTooLarge, WireError
from lanspread_core.wire.framing import OneFrame
from lanspread_core.wire.messages import (
    Error,
    GameManifest,
    LibraryDelta,
    LibrarySnapshot,
    Message,
    encode_message,
    parse_message,
)

log = logging.getLogger(__name__)


class Remote(NamedTuple):
    """Who sent a request: the address it came from, and the peer id whose key
    the client proved in the handshake (None: it presented no certificate)."""

    host: str
    port: int
    peer_id: str | None = None


#: Answers a request; gets the :class:`Remote` the request came from.
Handler = Callable[[Message, Remote], Awaitable[Message]]

#: QUIC application error code for STOP_SENDING on a rejected request stream.
STOP_REJECTED = 0x1
#: Frames at least this big are decoded in a worker thread, not on the loop.
_BIG_PAYLOAD = 256 * 1024
#: Replies that can be big enough to encode in a worker thread.
_BULKY = (GameManifest, LibrarySnapshot, LibraryDelta)


@dataclass(frozen=True)
class ControlEndpoint:
    """Where the control server listens (the real port when asked for port 0)."""

    host: str
    port: int


async def serve_control(
    host: str,
    port: int,
    identity: Identity,
    handler: Handler,
    *,
    max_streams_per_connection: int = MAX_STREAMS_PER_CONNECTION,
    idle_timeout: float = IDLE_TIMEOUT,
    budget: FrameBudget | None = None,
    task_status: anyio.abc.TaskStatus[ControlEndpoint] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the control plane on UDP ``host:port`` until cancelled.

    Requests in flight hold bytes of ``budget`` (:mod:`.budget`), and new
    connections are capped per address and in all (:mod:`.admission`).

    Reports the bound :class:`ControlEndpoint` through ``task_status`` once
    listening. ``handler`` is awaited once per request, each in its own task;
    what it raises becomes an ``internal`` Error reply (and a log record),
    never the end of the server.

    :raises ListenError: the UDP port cannot be bound (in use, bad address).
    """
    configuration = server_configuration(identity, idle_timeout=idle_timeout)
    send, receive = anyio.create_memory_object_stream[_Job](math.inf)

    def submit(job: _Job) -> bool:
        try:
            send.send_nowait(job)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return False  # shutting down
        return True

    create_protocol = partial(
        _ServerProtocol,
        submit=submit,
        max_streams=max_streams_per_connection,
        budget=budget or FrameBudget(),
    )
    loop = asyncio.get_running_loop()
    # aioquic's serve() does exactly this but keeps the transport private; the
    # transport is where the bound port (for port 0) can be read.
    try:
        transport, server = await loop.create_datagram_endpoint(
            lambda: CappedQuicServer(configuration=configuration, create_protocol=create_protocol),
            local_addr=(host, port),
        )
    except OSError as exc:
        send.close()
        receive.close()
        raise ListenError(
            f"cannot listen for peers on UDP {host} port {port} ({exc.strerror or exc})",
            errno=exc.errno,
        ) from None
    try:
        async with receive, anyio.create_task_group() as tg:
            bound = transport.get_extra_info("sockname")
            endpoint = ControlEndpoint(bound[0], bound[1])
            log.info("control plane listening on %s port %d (udp)", endpoint.host, endpoint.port)
            task_status.started(endpoint)
            async for job in receive:
                scope = anyio.CancelScope()
                if job.conn.attach(job.stream_id, scope):
                    tg.start_soon(_run_job, job, scope, handler, name=f"control {job.stream_id}")
    finally:
        send.close()
        server.close()  # closes every connection, then the socket


@dataclass(frozen=True)
class _Job:
    conn: _ServerProtocol
    stream_id: int
    payload: bytes
    remote: Remote


async def _run_job(job: _Job, scope: anyio.CancelScope, handler: Handler) -> None:
    try:
        with scope:
            reply = await _answer(job, handler)
            if isinstance(reply, _BULKY):
                data = await anyio.to_thread.run_sync(_encode_reply, reply)
            else:
                data = _encode_reply(reply)
            job.conn.send_reply(job.stream_id, data)
    finally:
        job.conn.detach(job.stream_id)


async def _answer(job: _Job, handler: Handler) -> Message:
    try:
        if len(job.payload) >= _BIG_PAYLOAD:
            request = await anyio.to_thread.run_sync(parse_message, job.payload)
        else:
            request = parse_message(job.payload)
    except WireError as exc:
        log.debug("bad request from %s: %s", job.remote, exc)
        return Error.from_wire_error(exc)
    if not request.is_request():
        return Error.of("not_a_request", f"{request.TYPE} is not a request")
    claimed = getattr(request, "peer_id", None)
    if isinstance(claimed, str) and claimed != job.remote.peer_id:
        # every request acts for the peer of its connection, and no other
        proven = job.remote.peer_id
        return Error.of(
            "identity",
            f"this connection proved {'peer ' + proven[:8] if proven else 'no key'},"
            f" not the peer {claimed[:8]} the {request.TYPE} names",
        )
    try:
        reply = await handler(request, job.remote)
    except Exception:
        log.exception(
            "handling %s from %s:%d failed", request.TYPE, job.remote.host, job.remote.port
        )
        return Error.of("internal", f"the peer failed to handle {request.TYPE}")
    if not isinstance(reply, Message) or not request.accepts_reply(reply):
        log.error("the control handler answered %s with %r", request.TYPE, reply)
        return Error.of("internal", f"the peer failed to handle {request.TYPE}")
    return reply


def _encode_reply(reply: Message) -> bytes:
    try:
        return encode_message(reply)
    except FrameTooLarge as exc:
        log.error("cannot send %s: %s", reply.TYPE, exc)
        return encode_message(Error.of("too_large", f"the {reply.TYPE} answer is too large"))


@dataclass
class _Inbound:
    """A request stream still receiving."""

    frame: OneFrame = field(default_factory=lambda: OneFrame("request"))
    rejected: bool = False  # already answered with an Error; drop the rest


class _ServerProtocol(QuicConnectionProtocol):
    """One client connection: turns streams into jobs and jobs' replies into streams."""

    def __init__(
        self,
        *args: Any,
        submit: Callable[[_Job], bool],
        max_streams: int,
        budget: FrameBudget,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._ledger = Ledger(budget, self._refuse)
        ask_for_client_certificate(self._quic)
        self._submit = submit
        self._max_streams = max_streams
        self._inbound: dict[int, _Inbound] = {}
        # Streams handed to serve_control: None until its task has a scope.
        self._jobs: dict[int, anyio.CancelScope | None] = {}
        self._terminated = False
        #: the peer id the client's key proved, read once the handshake is done
        self._peer_id: str | None = None

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            self._on_data(event)
        elif isinstance(event, StreamReset | StopSendingReceived):
            # The client gave up on this request (or finished a rejected one).
            self._inbound.pop(event.stream_id, None)
            self._ledger.release(event.stream_id)
            self._cancel_job(event.stream_id)
        elif isinstance(event, ConnectionTerminated):
            self._terminated = True
            self._inbound.clear()
            self._ledger.close()
            for stream_id in list(self._jobs):
                self._cancel_job(stream_id)

    # -- for serve_control's tasks

    def attach(self, stream_id: int, scope: anyio.CancelScope) -> bool:
        """Give a queued job its cancel scope; False if it was cancelled meanwhile."""
        if self._terminated or stream_id not in self._jobs:
            return False
        self._jobs[stream_id] = scope
        return True

    def detach(self, stream_id: int) -> None:
        self._jobs.pop(stream_id, None)
        self._ledger.release(stream_id)

    def send_reply(self, stream_id: int, data: bytes) -> None:
        if self._terminated:
            return
        try:
            self._quic.send_stream_data(stream_id, data, end_stream=True)
        except (RuntimeError, ValueError):
            return  # the client reset or abandoned the stream meanwhile
        self.transmit()

    # -- inside aioquic's callbacks

    def _on_data(self, event: StreamDataReceived) -> None:
        stream_id = event.stream_id
        state = self._inbound.get(stream_id)
        if state is None:
            state = self._inbound[stream_id] = _Inbound()
            if stream_id & 0x2:  # unidirectional: there is nowhere to answer
                state.rejected = True
                self._stop(stream_id)
            elif len(self._inbound) + len(self._jobs) > self._max_streams:
                self._reject(
                    stream_id,
                    state,
                    Error.of("busy", f"more than {self._max_streams} requests in flight"),
                    event.end_stream,
                )
                return
        if state.rejected:
            if event.end_stream:
                del self._inbound[stream_id]
            return
        over = self._ledger.add(stream_id, len(event.data))
        if over is not None:
            self._reject(stream_id, state, Error.of("busy", over), event.end_stream)
            return
        try:
            payload = state.frame.feed(event.data, event.end_stream)
        except WireError as exc:
            self._reject(stream_id, state, Error.from_wire_error(exc), event.end_stream)
            return
        if payload is None:
            return
        self._ledger.complete(stream_id)
        del self._inbound[stream_id]
        self._jobs[stream_id] = None
        if not self._submit(_Job(self, stream_id, payload, self._remote())):
            del self._jobs[stream_id]

    def _reject(self, stream_id: int, state: _Inbound, error: Error, ended: bool) -> None:
        log.debug("rejecting stream %d from %s: %s", stream_id, self._remote(), error.message)
        self.send_reply(stream_id, encode_message(error))
        self._ledger.release(stream_id)
        if ended:
            self._inbound.pop(stream_id, None)
        else:
            state.rejected = True
            state.frame = OneFrame("request", max_frame=0)  # drop what it held
            self._stop(stream_id)

    def _refuse(self, stream_id: int, code: str, why: str) -> None:
        """The budget refuses a stream still receiving (too slow, or too big)."""
        state = self._inbound.get(stream_id)
        if state is not None and not state.rejected:
            self._reject(stream_id, state, Error.of(code, why), False)

    def _stop(self, stream_id: int) -> None:
        try:
            self._quic.stop_stream(stream_id, STOP_REJECTED)
        except ValueError:
            return
        self.transmit()

    def _cancel_job(self, stream_id: int) -> None:
        if stream_id in self._jobs:
            scope = self._jobs.pop(stream_id)
            if scope is not None:
                scope.cancel()

    def _remote(self) -> Remote:
        if self._peer_id is None:  # the key cannot change within a connection
            self._peer_id = proven_peer_id(self._quic)
        peer_id = self._peer_id
        addr = self._quic.get_peer_address()
        if addr is None:
            return Remote("", 0, peer_id)
        host = str(addr[0])
        if host.startswith("::ffff:") and "." in host:
            host = host[len("::ffff:") :]  # an IPv4 client on a dual-stack socket
        return Remote(host, int(addr[1]), peer_id)
