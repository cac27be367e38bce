"""The local control endpoint: the JSONL protocol on ``<state_dir>/control.sock``.

While a peer runs, whatever front-end drives it, the same user's other
programs (``lanspread status``, ``lanspread install GAME`` ...) reach it here.
Each connection is one JSONL session exactly like ``lanspread peer``'s
(docs/protocol.md): the ``ready`` and ``library`` events first, then results,
errors and events. The one difference: a client's end of input ends only its
own session, never the peer; operations it started go on.

Only the owner may connect: the socket is bound under a temporary name,
``chmod 0600`` and then renamed into place, so it never exists at its real
path with wider permissions (the state directory itself is 0700). A socket
left behind by a peer that was killed is replaced, which is safe because the
caller holds the state directory's lock. It is removed when the peer stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from lanspread_core.errors import LanspreadError
from lanspread_core.ipc.session import MAX_LINE, serve_session

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

#: AF_UNIX addresses hold at most 107 bytes on Linux.
_MAX_ADDRESS = 100


class ControlSocketError(LanspreadError):
    """The local control socket could not be created."""


@contextlib.contextmanager
def unix_address(path: Path) -> Iterator[str]:
    """An address ``bind``/``connect`` accept for ``path``, however long it is.

    A path over the AF_UNIX limit is reached through its folder's descriptor
    (``/proc/self/fd/N/name``), which the kernel resolves like the full path.
    """
    if len(os.fsencode(path)) <= _MAX_ADDRESS:
        yield str(path)
        return
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


def _remove_stale(path: Path) -> None:
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise ControlSocketError(f"{path} exists and is not a socket; remove it")
    path.unlink(missing_ok=True)


def bind_private(path: Path) -> socket.socket:
    """A listening Unix socket at ``path`` with mode 0600, replacing a stale one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        _remove_stale(tmp)
        with unix_address(tmp) as address:
            sock.bind(address)
        os.chmod(tmp, 0o600)
        sock.listen(16)
        _remove_stale(path)
        os.replace(tmp, path)
    except (OSError, ControlSocketError) as exc:
        sock.close()
        with contextlib.suppress(OSError):
            tmp.unlink()
        if isinstance(exc, ControlSocketError):
            raise
        raise ControlSocketError(f"cannot listen on {path}: {exc.strerror or exc}") from exc
    return sock


def _remove_ours(path: Path, inode: int) -> None:
    """Unlink ``path`` only if it is still the socket this peer made."""
    with contextlib.suppress(OSError):
        if path.lstat().st_ino == inode:
            path.unlink()


async def serve_control_socket(
    handle: PeerRuntimeHandle,
    path: Path,
    *,
    task_status: anyio.abc.TaskStatus[Path] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Serve JSONL sessions on ``path`` until the peer stops; then remove it."""
    sock = bind_private(path)
    inode = path.lstat().st_ino
    try:
        listener = await anyio.abc.SocketListener.from_socket(sock)
    except BaseException:
        sock.close()
        _remove_ours(path, inode)
        raise
    try:
        async with listener, anyio.create_task_group() as tg:

            async def accept_loop() -> None:
                while True:
                    stream = await listener.accept()
                    tg.start_soon(_session, handle, stream)

            tg.start_soon(accept_loop)
            log.debug("local control socket at %s", path)
            task_status.started(path)
            await handle.wait_stopped()
            tg.cancel_scope.cancel()
    finally:
        _remove_ours(path, inode)


async def _session(handle: PeerRuntimeHandle, stream: anyio.abc.SocketStream) -> None:
    """One client: a JSONL session that ends with the client, not the peer."""
    reader = BufferedByteReceiveStream(stream)

    async def read_line() -> bytes:
        try:
            return await reader.receive_until(b"\n", MAX_LINE) + b"\n"
        except anyio.DelimiterNotFound:
            log.debug("control socket client sent a line over %d bytes", MAX_LINE)
            return b""
        except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError):
            return b""

    async def write_line(data: bytes) -> None:
        await stream.send(data)

    async with stream:
        try:
            try:
                await serve_session(handle, read_line, write_line, shutdown_on_eof=False)
            except* (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as group:
                # the client went away while we wrote to it: its session is over
                log.debug("control socket client left: %s", group.exceptions[0])
        except Exception:  # one broken session must not take the endpoint down
            log.exception("control socket session failed")
