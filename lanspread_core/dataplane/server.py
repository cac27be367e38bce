"""The data-plane server: granted byte ranges over plain TCP, by ``sendfile``.

One task per connection, all in the server's task group. For each request
on the connection: read the request frame on the event loop, redeem the
token, register the transfer as a reader of its game, ask the runtime
whether the game may be served (``resolve``), and then hand the socket to a
worker thread that checks every range against the disk and sends the bytes
with ``os.sendfile`` (:func:`~lanspread_core.system.portable.sendfile`): zero
copy, no file read into memory, and disk waits (a cold page cache) off the
event loop. The format, including how one
connection carries several grants, is in
:mod:`lanspread_core.wire.dataplane`.

Why a worker thread and a blocking socket rather than the loop's
``sock_sendfile``: one blocking ``sendfile`` moves a whole 4 MiB range in one
system call without waking the loop per socket-buffer refill, and a read from
a cold disk cannot stall the control plane. Cancelling (a writer cancelling
the game, or the server stopping) shuts the socket down from the loop, which
wakes the thread at once with a broken pipe; a receiver that takes nothing
for ``stall_timeout`` seconds ends the send the same way (a send timeout).

Bounded and fair (issue 15): connections are capped per source, per peer and
in all before a byte is read (:mod:`~lanspread_core.dataplane.admission`); a
connection must send its first request within ``first_request_timeout``;
send slots are shared fairly by peer (:mod:`~lanspread_core.dataplane.slots`);
and a send whose receiver takes too little while others wait is cut
(:mod:`~lanspread_core.dataplane.pace`). Refusals are logged once a minute
per cause and source, never per connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import inspect
import logging
import os
import select
import socket
import stat
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.abc

from lanspread_core.dataplane.admission import Admission, ConnectionRefused, Ticket
from lanspread_core.dataplane.errors import DataListenError, TransferRefused
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.pace import PACING, TICK, Pace, Pacing, TooSlow
from lanspread_core.dataplane.slots import MAX_SENDS, FairSlots
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.library.layout import UnsafeDownloadPath, download_path
from lanspread_core.system.faults import fault_once
from lanspread_core.system.portable import (
    folder_beneath,
    pread,
    prefer_loss_based,
    sendfile,
    set_send_timeout,
)
from lanspread_core.system.ratelog import OncePer
from lanspread_core.wire.dataplane import (
    FIRST_REQUEST_TIMEOUT,
    REQUEST_MAX,
    REQUEST_TIMEOUT,
    encode_status,
    parse_request,
)
from lanspread_core.wire.errors import WireError
from lanspread_core.wire.framing import FrameDecoder
from lanspread_core.wire.messages import ByteRange

log = logging.getLogger(__name__)

#: The runtime's eligibility check: the game root to serve ``grant`` from, or
#: :class:`TransferRefused`. May be a plain or an async function.
Resolve = Callable[[Grant], Path | Awaitable[Path]]
#: Sends a stream-install on the blocking socket (status frame included) from
#: a worker thread; returns the bytes sent. Provided by the runtime.
StreamSender = Callable[[socket.socket, Path, Grant], int]

#: Sends running at once (each holds a worker thread); more wait, fairly by peer.
MAX_CONCURRENT_SENDS = MAX_SENDS
#: A receiver that accepts no byte for this long is dropped.
STALL_TIMEOUT = 30.0
_STATUS_TIMEOUT = 5.0
_CORRUPT_SWITCH = "serve.corrupt_once"
#: Files one send keeps open at once.
_MAX_OPEN_PER_SEND = 16

_T = TypeVar("_T")


@dataclass(frozen=True)
class DataEndpoint:
    """Where the data server listens (the real port when asked for port 0)."""

    host: str
    port: int


async def serve_data(
    host: str,
    port: int,
    tokens: TransferTokens,
    resolve: Resolve,
    outbound: OutboundTransfers,
    *,
    stall_timeout: float = STALL_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
    first_request_timeout: float = FIRST_REQUEST_TIMEOUT,
    max_sends: int = MAX_CONCURRENT_SENDS,
    admission: Admission | None = None,
    pacing: Pacing = PACING,
    stream: StreamSender | None = None,
    task_status: anyio.abc.TaskStatus[DataEndpoint] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve granted ranges on TCP ``host:port`` until cancelled.

    Reports the bound :class:`DataEndpoint` through ``task_status`` once
    listening. A failing connection is logged and closed, never the end of
    the server.

    :raises DataListenError: the port cannot be bound (in use, bad address).
    """
    listener = _listen(host, port)
    ctx = _Context(
        tokens,
        resolve,
        outbound,
        anyio.CapacityLimiter(max_sends),
        FairSlots(max_sends),
        admission or Admission(),
        stall_timeout,
        (first_request_timeout, request_timeout),
        pacing,
        stream,
    )
    loop = asyncio.get_running_loop()
    try:
        async with anyio.create_task_group() as tg:
            bound = listener.getsockname()
            endpoint = DataEndpoint(bound[0], bound[1])
            log.info("data plane listening on %s port %d (tcp)", endpoint.host, endpoint.port)
            task_status.started(endpoint)
            while True:
                try:
                    conn, remote = await loop.sock_accept(listener)
                except OSError as exc:  # out of fds, a connection reset before accept...
                    if ctx.said(("accept", exc.errno)):
                        log.warning("data plane accept failed: %s (said once a minute)", exc)
                    await anyio.sleep(0.1)
                    continue
                prefer_loss_based(conn)  # this side sends: see the function
                ticket = _admit(conn, str(remote[0]), ctx)
                if ticket is not None:
                    own = replace(ctx, ticket=ticket, lease=_Lease())
                    tg.start_soon(_serve_connection, conn, remote, own)
    finally:
        listener.close()


@dataclass(frozen=True)
class _Context:
    """The server's shared state; each connection gets a copy holding its ticket."""

    tokens: TransferTokens
    resolve: Resolve
    outbound: OutboundTransfers
    limiter: anyio.CapacityLimiter
    slots: FairSlots
    admission: Admission
    stall_timeout: float
    #: seconds to the first request of a connection, and between later ones
    timeouts: tuple[float, float]
    pacing: Pacing = PACING
    stream: StreamSender | None = None
    said: OncePer = field(default_factory=OncePer)
    ticket: Ticket = field(default_factory=lambda: Ticket(""))
    lease: _Lease = field(default_factory=lambda: _Lease())

    def contended(self) -> bool:
        """Whether sends wait for a slot (read from sending threads)."""
        return self.slots.waiting > 0


@dataclass
class _Lease:
    """The send slot a connection holds across grants, if any, and its requests."""

    peer_id: str | None = None
    requests: _Requests | None = None

    def next_waiting(self) -> bool:
        """Whether the connection's next request is already here (pipelined)."""
        return self.requests is not None and self.requests.waiting()


def _admit(conn: socket.socket, address: str, ctx: _Context) -> Ticket | None:
    """The connection's ticket, or None when it is over a cap: then it is told
    ``busy`` without a wait and closed, before anything is read from it."""
    try:
        return ctx.admission.enter(address)
    except ConnectionRefused as exc:
        if ctx.said((exc.cause, address)):
            log.warning("refused data connections from %s: %s (said once a minute)", address, exc)
        with conn, contextlib.suppress(OSError):
            conn.setblocking(False)
            conn.send(encode_status(f"busy: {exc}"))
        return None


def _listen(host: str, port: int) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family = infos[0][0]
        dualstack = family == socket.AF_INET6 and host in ("", "::")
        listener = socket.create_server(
            (host, port), family=family, backlog=128, dualstack_ipv6=dualstack
        )
    except OSError as exc:
        raise DataListenError(
            f"cannot listen for data connections on TCP {host} port {port} ({exc.strerror or exc})",
            errno=exc.errno,
        ) from None
    listener.setblocking(False)
    return listener


async def _serve_connection(conn: socket.socket, remote: tuple[Any, ...], ctx: _Context) -> None:
    where = f"{remote[0]}:{remote[1]}"
    who = ctx.ticket
    with conn:
        try:
            await _serve(conn, where, ctx)
        except TransferRefused as exc:
            cause = getattr(exc, "cause", str(exc)[:40])
            if ctx.said((cause, who.peer_id or who.address)):
                log.info("refused a transfer to %s: %s (said once a minute)", where, exc)
            await _send_status_quietly(conn, str(exc))
        except TooSlow as exc:
            if ctx.said(("slow", who.peer_id or who.address)):
                log.info("cut a send to %s: %s (said once a minute)", where, exc)
        except WireError as exc:
            log.debug("bad data request from %s: %s", where, exc)
            await _send_status_quietly(conn, f"the request is malformed: {exc}")
        except (OSError, TimeoutError) as exc:
            log.debug("data connection from %s failed: %s", where, exc)
        except Exception:  # a bug in one connection must not stop the server
            log.exception("data connection from %s failed", where)
            await _send_status_quietly(conn, "internal error on the serving peer")
        finally:
            ctx.admission.leave(who)
            if ctx.lease.peer_id is not None:
                ctx.slots.release(ctx.lease.peer_id)


async def _serve(conn: socket.socket, where: str, ctx: _Context) -> None:
    """Answer the connection's requests one after another until it ends.

    The first request must come within the first of ``ctx.timeouts`` of
    connecting; each later one within the second of the previous grant's
    last byte, or the connection is closed quietly (the receiver
    reconnects). The first token names the peer the connection counts for.
    A stream-install grant is always the last on its connection.
    """
    requests = ctx.lease.requests = _Requests(conn)
    first = True
    while True:
        conn.setblocking(False)  # the loop reads requests; a send left it blocking
        timeout = ctx.timeouts[0] if first else ctx.timeouts[1]
        with anyio.move_on_after(timeout) as idle:
            token = await requests.next()
        if idle.cancelled_caught:
            if first:
                raise TimeoutError(f"no request within {timeout:g} s of connecting")
            return  # idle between grants: the receiver reconnects when it needs us again
        if token is None:
            if first:
                raise TransferRefused("the connection ended before a request")
            return
        first = False
        grant = ctx.tokens.redeem(token, host=where.rsplit(":", 1)[0])  # only its asker
        if not await _serve_grant(conn, where, ctx, grant):
            return


async def _serve_grant(conn: socket.socket, where: str, ctx: _Context, grant: Grant) -> bool:
    """Send one redeemed grant; whether the connection may carry another.

    The first grant names the peer the connection counts for. The send slot
    is taken first (waiting is fair by peer), the transfer registered second
    and the game checked third: see :mod:`lanspread_core.dataplane.outbound`
    for why in that order.
    """
    ctx.admission.identify(ctx.ticket, grant.peer_id)
    lease = ctx.lease
    if lease.peer_id != grant.peer_id:
        if lease.peer_id is not None:
            ctx.slots.release(lease.peer_id)
            lease.peer_id = None
        await ctx.slots.acquire(grant.peer_id)
        lease.peer_id = grant.peer_id
    more = await _send_grant(conn, where, ctx, grant)
    if not (more and lease.next_waiting() and ctx.slots.may_keep(grant.peer_id)):
        ctx.slots.release(grant.peer_id)
        lease.peer_id = None
    return more


async def _send_grant(conn: socket.socket, where: str, ctx: _Context, grant: Grant) -> bool:
    """Send ``grant`` in a worker thread, holding a slot; whether more may follow."""
    async with ctx.outbound.register(grant.game_id, grant.peer_id) as transfer:
        # registered first, checked second: see lanspread_core.dataplane.outbound
        root = ctx.resolve(grant)
        if inspect.isawaitable(root):
            root = await root
        send: Callable[[], int | None]
        if grant.kind == "stream":
            if ctx.stream is None:
                raise TransferRefused("this peer does not serve stream-installs")
            _blocking(conn, ctx.stall_timeout)
            send = partial(ctx.stream, conn, Path(root), grant)
        else:
            send = partial(
                _send_blocking,
                conn,
                Path(root),
                grant.ranges,
                Pace(ctx.stall_timeout, ctx.contended, ctx.pacing),
                transfer.on_sent,
            )
        sent = await _run_interruptible(send, partial(_shutdown, conn), ctx.limiter)
        if sent is None:  # a range was refused; the status frame said why
            return False
        log.debug("sent %d bytes of %s to %s", sent, grant.game_id, where)
    return grant.kind != "stream"


class _Requests:
    """The request frames of one connection, read on the loop; a receiver may
    send its next request while the previous grant is still being sent."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._decoder = FrameDecoder(max_frame=REQUEST_MAX)
        self._frames: list[bytes] = []

    def waiting(self) -> bool:
        """Whether a request (or some of one) is here already, without waiting."""
        if self._frames or self._decoder.buffered:
            return True
        try:
            readable, _, _ = select.select([self._conn], [], [], 0)
        except (OSError, ValueError):
            return False
        return bool(readable)

    async def next(self) -> str | None:
        """The next token, or None when the receiver closed between requests.

        :raises WireError: a malformed or oversized frame, or one cut short.
        """
        loop = asyncio.get_running_loop()
        while not self._frames:
            data = await loop.sock_recv(self._conn, REQUEST_MAX + 4)
            if not data:
                self._decoder.check_complete()
                return None
            self._frames += self._decoder.feed_raw(data)
        return parse_request(self._frames.pop(0))


async def _send_status_quietly(conn: socket.socket, error: str) -> None:
    """Tell the receiver why, if the connection still takes it; never raise."""
    try:
        with anyio.move_on_after(_STATUS_TIMEOUT):
            conn.setblocking(False)
            await asyncio.get_running_loop().sock_sendall(conn, encode_status(error))
    except (OSError, ValueError):
        pass


def _shutdown(conn: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already gone
        conn.shutdown(socket.SHUT_RDWR)


async def _run_interruptible(
    func: Callable[[], _T], interrupt: Callable[[], None], limiter: anyio.CapacityLimiter
) -> _T:
    """Run blocking ``func`` in a worker thread; when cancelled meanwhile, call
    ``interrupt`` on the loop so ``func`` returns promptly, then be cancelled.

    A worker thread cannot be cancelled, and abandoning it would leave it
    using a socket we are about to close (whose descriptor number the next
    connection may reuse), so we wake it instead and wait for it.
    """
    finished = False
    error: BaseException | None = None
    results: list[_T] = []
    async with anyio.create_task_group() as tg:

        async def interrupt_on_cancel() -> None:
            try:
                await anyio.sleep_forever()
            finally:
                if not finished:
                    interrupt()

        tg.start_soon(interrupt_on_cancel)
        try:
            results.append(await anyio.to_thread.run_sync(func, limiter=limiter))
        except Exception as exc:  # re-raised below, not wrapped in a group
            error = exc
        finally:
            finished = True
            tg.cancel_scope.cancel()
    if error is not None:
        raise error
    return results[0]


# ------------------------------------------------------------ worker thread


def _send_blocking(
    conn: socket.socket,
    root: Path,
    ranges: Sequence[ByteRange],
    pace: Pace,
    on_sent: Callable[[int], None] = lambda n: None,
) -> int | None:
    """Check every range, send the status frame, then the ranges; bytes sent,
    or None when a range was refused (the status frame says why).

    :raises TooSlow: the receiver stalled, or kept others waiting while
        taking less than the minimum rate.
    """
    set_send_timeout(conn, TICK)  # wake to ask the pace whether to go on
    files = _OpenFiles(root)
    try:
        try:
            for r in ranges:
                files.check(r)
        except TransferRefused as exc:
            _send_paced(conn, encode_status(str(exc)), pace)
            return None
        _send_paced(conn, encode_status(), pace)
        sent = 0
        for r in ranges:
            fd = files.fd(r.path)
            if r.length and fault_once(_CORRUPT_SWITCH):
                _send_corrupted(conn, fd, r, pace)
            else:
                _sendfile(conn, fd, r, pace)
            sent += r.length
            on_sent(r.length)
        return sent
    finally:
        files.close()


def _blocking(conn: socket.socket, stall_timeout: float) -> None:
    """Blocking sends that give up when the receiver takes nothing for a while."""
    set_send_timeout(conn, stall_timeout)


def _sendfile(conn: socket.socket, fd: int, r: ByteRange, pace: Pace) -> None:
    offset, left = r.offset, r.length
    while left:
        try:
            sent = sendfile(conn, fd, offset, left)
        except (BlockingIOError, TimeoutError):  # a tick without room, as either OS says it
            pace.check()
            continue
        if sent == 0:  # the file shrank under us: end early, the receiver sees it
            raise OSError(errno.EIO, f"{r.path} ended at {offset} while being sent")
        offset += sent
        left -= sent
        pace.sent(sent)
        pace.check()


def _send_paced(conn: socket.socket, data: bytes | bytearray | memoryview, pace: Pace) -> None:
    view = memoryview(data)
    while view:
        try:
            n = conn.send(view)
        except (BlockingIOError, TimeoutError):
            pace.check()
            continue
        view = view[n:]
        pace.sent(n)


def _send_corrupted(conn: socket.socket, fd: int, r: ByteRange, pace: Pace) -> None:
    data = bytearray()
    while len(data) < r.length:
        piece = pread(fd, r.length - len(data), r.offset + len(data))
        if not piece:
            raise OSError(errno.EIO, f"{r.path} ended while being read")
        data += piece
    data[len(data) // 2] ^= 0xFF
    log.warning(
        "fault %s: sending %s at %d with one byte flipped", _CORRUPT_SWITCH, r.path, r.offset
    )
    _send_paced(conn, data, pace)


class _OpenFiles:
    """The files of one transfer, opened without following any link; at most
    :data:`_MAX_OPEN_PER_SEND` at once (a grant may name thousands of small
    files), reopened when needed again."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._sizes: dict[str, int] = {}
        self._fds: OrderedDict[str, int] = OrderedDict()

    def check(self, r: ByteRange) -> None:
        """Open ``r.path`` if new and check the range lies inside it."""
        size = self._sizes.get(r.path)
        if size is None:
            self.fd(r.path)
            size = self._sizes[r.path]
        if r.offset + r.length > size:
            raise TransferRefused(
                f"the range of {r.length} bytes at {r.offset} lies past the end "
                f"of {r.path!r} ({size} bytes); refused"
            )

    def fd(self, path: str) -> int:
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        fd, size = self._open(path)
        self._sizes.setdefault(path, size)
        self._fds[path] = fd
        while len(self._fds) > _MAX_OPEN_PER_SEND:
            os.close(self._fds.popitem(last=False)[1])
        return fd

    def _open(self, path: str) -> tuple[int, int]:
        try:
            rel = download_path(path)
        except UnsafeDownloadPath as exc:
            raise TransferRefused(f"{exc}; refused") from None
        try:
            with folder_beneath(self._root, rel.parent, create=False) as folder:
                fd = folder.open(rel.name, os.O_RDONLY)
        except OSError as exc:
            raise TransferRefused(_open_refusal(path, exc)) from None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise TransferRefused(f"{path!r} is not a regular file; refused")
        return fd, st.st_size

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _open_refusal(path: str, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return f"{path!r} is or passes through a symbolic link, which is never served; refused"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return f"{path!r} does not exist in this game; refused"
    return f"{path!r} cannot be opened ({exc.strerror}); refused"
