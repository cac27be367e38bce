"""The local control endpoint: the JSONL protocol on ``<state_dir>/control.sock``.

While a peer runs, whatever front-end drives it, the same user's other
programs (``lanspread status``, ``lanspread install GAME`` ...) reach it here.
Each connection is one JSONL session exactly like ``lanspread peer``'s
(docs/protocol.md): the ``ready`` and ``library`` events first, then results,
errors and events. The one difference: a client's end of input ends only its
own session, never the peer; operations it started go on.

Only the owner may connect: the socket is bound under a temporary name,
``chmod 0600`` and then renamed into place, so it never exists at its real
path with wider permissions (the state directory itself is 0700). On an OS
without Unix sockets the peer listens on loopback TCP instead, and the same
path holds an owner-only file with the port and a token that a client sends
as its first line (:func:`~lanspread_core.system.portable.listen_private`).
An endpoint left behind by a peer that was killed is replaced, which is safe
because the caller holds the state directory's lock. It is removed when the
peer stops.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from lanspread_core.errors import LanspreadError
from lanspread_core.ipc.session import MAX_LINE, LineTooLong, serve_session
from lanspread_core.system.portable import PrivateListener, listen_private
from lanspread_core.system.streams import TransportStream, accepting

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

#: Seconds a loopback client has to send its token before it is dropped.
ADMIT_TIMEOUT = 5.0


class ControlSocketError(LanspreadError):
    """The local control socket could not be created."""


async def serve_control_socket(
    handle: PeerRuntimeHandle,
    path: Path,
    *,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSONL sessions on ``path`` until the peer stops; then remove it."""
    try:
        private = listen_private(path)
    except OSError as exc:
        raise ControlSocketError(f"cannot listen on {path}: {exc.strerror or exc}") from None
    try:
        async with accepting(private.sock) as connections, anyio.create_task_group() as tg:

            async def accept_loop() -> None:
                async for stream in connections:
                    tg.start_soon(_session, handle, stream, private)

            tg.start_soon(accept_loop)
            log.debug("local control socket at %s", path)
            task_status.started(path)
            await handle.wait_stopped()
            tg.cancel_scope.cancel()
    finally:
        private.close()


async def _session(
    handle: PeerRuntimeHandle, stream: TransportStream, private: PrivateListener
) -> None:
    """One client: a JSONL session that ends with the client, not the peer."""
    reader = BufferedByteReceiveStream(stream)

    async def read_line() -> bytes:
        too_long = False
        while True:
            try:
                line = await reader.receive_until(b"\n", MAX_LINE) + b"\n"
            except anyio.DelimiterNotFound:  # no newline in what is buffered: skip it
                await reader.receive_exactly(MAX_LINE)
                too_long = True
                continue
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
                line = b""
            if too_long:
                log.debug("control socket client sent a line over %d bytes", MAX_LINE)
                raise LineTooLong
            return line

    async def write_line(data: bytes) -> None:
        await stream.send(data)

    async with stream:
        if private.token is not None:  # loopback TCP: any local user can connect
            first = b""
            with anyio.move_on_after(ADMIT_TIMEOUT), contextlib.suppress(LineTooLong):
                first = await read_line()
            if not private.admits(first):
                log.warning("dropped a control connection that did not present the token")
                return
        try:
            try:
                await serve_session(handle, read_line, write_line, shutdown_on_eof=False)
            except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as group:
                # the client went away while we wrote to it: its session is over
                log.debug("control socket client left: %s", group.exceptions[0])
        except Exception:  # one broken session must not take the endpoint down
            log.exception("control socket session failed")
