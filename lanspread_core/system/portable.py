"""The operating-system calls that Linux has and Windows lacks, each with its fallback.

Windows is the usual OS at a LAN party; the core is built and tested on Linux.
Every call below that is not the same everywhere is made here and nowhere
else, next to what another OS does instead:

=====================================  ==========================================
Linux                                  elsewhere
=====================================  ==========================================
``os.pwrite`` / ``os.pread``           seek, then write or read, under a lock
``os.sendfile`` to a socket            read a block, send it, repeat
``fcntl.flock``                        ``msvcrt.locking`` (Windows), else a lock
                                       file created exclusively
a Unix socket for the control          loopback TCP, its port and a random token
endpoint (mode 0600)                   in an owner-only file at the same path
``/proc/self/fd`` for a long           refused (a shorter state dir is needed)
socket path
fsync of a folder (``O_DIRECTORY``)    skipped (NTFS journals the rename)
``dir_fd`` + ``O_NOFOLLOW`` walks      ``lstat`` each component, refusing links
                                       and junctions, then open by path
``SO_RCVTIMEO`` / ``SO_SNDTIMEO`` as   ``socket.settimeout`` (Windows takes a
a ``struct timeval``                   DWORD of milliseconds there)
``SIGKILL`` to oneself                 ``os._exit`` (no clean-up either)
``resource.setrlimit``: the soft       left as the OS set it (Windows' C runtime
open-files limit raised to the hard    has no such soft limit on sockets), and
one at start                           reported as unknown
``TCP_CONGESTION``: a data socket      the OS default, which is CUBIC already on
sends with CUBIC (else Reno), not a    Windows and macOS
system default of BBR
=====================================  ==========================================

Each is chosen by capability (``hasattr``, or a probe), never by platform
name, and the choice is a module attribute read at call time, so a test can
force every fallback on Linux and see the same behaviour. ``shutil.disk_usage``
(free space) is portable already and needs no seam.
"""

from __future__ import annotations

import contextlib
import errno
import hmac
import importlib
import json
import logging
import os
import secrets
import signal
import socket
import stat
import struct
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from types import ModuleType

from lanspread_core.system.streams import TransportStream, open_stream


def _optional(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


log = logging.getLogger(__name__)

_fcntl = _optional("fcntl")
#: POSIX resource limits (not on Windows); a test may put a stand-in or None here.
_resource = _optional("resource")
#: Windows' C runtime module; a test may put a stand-in with the same ``locking``.
_msvcrt = _optional("msvcrt")

#: Positioned I/O that leaves the file offset alone (not on Windows).
HAS_PWRITE = hasattr(os, "pwrite") and hasattr(os, "pread")
#: The kernel copies a file to a socket (Linux, macOS; not Windows).
HAS_SENDFILE = hasattr(os, "sendfile")
#: Whole-file advisory locks that die with the process (Unix).
HAS_FLOCK = hasattr(_fcntl, "flock")
#: Unix-domain sockets (not in Python's socket module on Windows).
HAS_UNIX_SOCKETS = hasattr(socket, "AF_UNIX")
#: Reaching a path through an open folder's descriptor (Linux).
HAS_PROC_FD = os.path.isdir("/proc/self/fd")
#: Opening a folder to fsync it, so a rename in it survives a power cut.
HAS_DIR_FSYNC = hasattr(os, "O_DIRECTORY")
#: Opening relative to an open folder, refusing a link (POSIX ``openat``).
HAS_DIR_FD = (
    os.open in os.supports_dir_fd and hasattr(os, "O_DIRECTORY") and hasattr(os, "O_NOFOLLOW")
)
HAS_SIGKILL = hasattr(signal, "SIGKILL")
#: A socket may choose its TCP congestion control (Linux, FreeBSD).
HAS_TCP_CONGESTION = hasattr(socket, "TCP_CONGESTION")

_O_BINARY = getattr(os, "O_BINARY", 0)  # Windows: no newline translation
_seek_lock = threading.Lock()
_TIMEVAL = struct.Struct("@ll")


def _timeval(seconds: float) -> bytes:
    whole = int(seconds)
    return _TIMEVAL.pack(whole, int((seconds - whole) * 1_000_000))


def _probe_timeval_timeouts() -> bool:
    """Whether ``SO_RCVTIMEO`` takes and gives back a ``struct timeval`` here."""
    if not hasattr(socket, "SO_RCVTIMEO"):
        return False
    want = _timeval(1.0)  # whole seconds survive the kernel's rounding to ticks
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, want)
            return probe.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, len(want)) == want
    except OSError:
        return False


#: Socket timeouts a blocking socket keeps: one ``recv`` with ``MSG_WAITALL``
#: then fills a whole chunk in one system call.
HAS_TIMEVAL_TIMEOUTS = _probe_timeval_timeouts()


# ---------------------------------------------------------------- file I/O


def pwrite(fd: int, data: bytes | bytearray | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (thread safe)."""
    view = memoryview(data).cast("B")
    if HAS_PWRITE:
        while view:
            written = os.pwrite(fd, view, offset)
            view = view[written:]
            offset += written
        return
    with _seek_lock:  # the offset is shared by every thread writing this file
        os.lseek(fd, offset, os.SEEK_SET)
        while view:
            view = view[os.write(fd, view) :]


def pread(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` of ``fd`` (fewer only at the end of the file)."""
    if HAS_PWRITE:
        return os.pread(fd, size, offset)
    with _seek_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.read(fd, size)


#: One ``sendfile`` call moves at most this much (the kernel caps a call near 2 GiB).
_SENDFILE_MAX = 1 << 30
#: The fallback's read size: big enough that a send fills the socket buffer.
_SEND_BLOCK = 1 << 20


def sendfile(sock: socket.socket, fd: int, offset: int, count: int) -> int:
    """Send up to ``count`` bytes of ``fd`` from ``offset``; how many went (0: end of file).

    ``sock`` is blocking; a send that times out raises as ``sock.send`` does.
    """
    if HAS_SENDFILE:
        return os.sendfile(sock.fileno(), fd, offset, min(count, _SENDFILE_MAX))
    data = pread(fd, min(count, _SEND_BLOCK), offset)
    sock.sendall(data)
    return len(data)


def fsync_dir(path: Path) -> None:
    """Make the entries of folder ``path`` durable (a rename, a new file in it)."""
    if not HAS_DIR_FSYNC:
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# ------------------------------------------------ folders entered without links


def _is_link(st: os.stat_result) -> bool:
    """A symlink, or (on Windows) any reparse point: a junction redirects like a link."""
    reparse = getattr(stat, "FILE_ATTRIBUTE_REPARSE_POINT", 0)
    return stat.S_ISLNK(st.st_mode) or bool(getattr(st, "st_file_attributes", 0) & reparse)


def _link_error(name: str) -> OSError:
    return OSError(errno.ELOOP, f"{name} is a symbolic link", name)


class Folder:
    """A folder reached from a root without following any link (see :func:`folder_beneath`)."""

    def open(self, name: str, flags: int, mode: int = 0o644) -> int:
        """Open ``name`` in this folder, never through a link; a blocking descriptor.

        ``flags`` are the portable ``os.O_*`` ones (access, create, truncate).

        :raises OSError: ``ELOOP`` when ``name`` is a link; what ``open`` raises.
        """
        raise NotImplementedError

    def unlink(self, name: str) -> None:
        raise NotImplementedError

    def rmdir(self, name: str) -> None:
        raise NotImplementedError


class _FdFolder(Folder):
    def __init__(self, fd: int) -> None:
        self.fd = fd

    def open(self, name: str, flags: int, mode: int = 0o644) -> int:
        # O_NONBLOCK: a FIFO planted here must not hang the open; cleared below
        extra = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
        try:
            fd = os.open(name, flags | extra, mode, dir_fd=self.fd)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.EMLINK) or _lstat_is_link(name, self.fd):
                raise _link_error(name) from None
            raise
        os.set_blocking(fd, True)
        return fd

    def unlink(self, name: str) -> None:
        os.unlink(name, dir_fd=self.fd)

    def rmdir(self, name: str) -> None:
        os.rmdir(name, dir_fd=self.fd)


def _lstat_is_link(name: str, dir_fd: int) -> bool:
    try:
        return _is_link(os.lstat(name, dir_fd=dir_fd))
    except OSError:
        return False


class _PathFolder(Folder):
    def __init__(self, path: Path) -> None:
        self.path = path

    def _refuse_link(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            if _is_link(os.lstat(self.path / name)):
                raise _link_error(name)

    def open(self, name: str, flags: int, mode: int = 0o644) -> int:
        self._refuse_link(name)
        return os.open(self.path / name, flags | _O_BINARY, mode)

    def unlink(self, name: str) -> None:
        os.unlink(self.path / name)

    def rmdir(self, name: str) -> None:
        os.rmdir(self.path / name)


@contextlib.contextmanager
def folder_beneath(root: Path, rel: PurePosixPath, *, create: bool) -> Iterator[Folder]:
    """The folder ``root/rel``, each component entered without following a link.

    With ``create``, missing folders are made (mode 0755). Where the OS has
    ``openat`` the walk holds each folder open, so nothing can swap a link in
    behind it; elsewhere each component is checked with ``lstat`` just before
    it is used.

    :raises OSError: ``ELOOP`` when a component is a link (or a junction),
        ``ENOTDIR`` when one is a file, ``ENOENT`` when one is missing and
        ``create`` is false; or whatever ``mkdir`` raised.
    """
    parts = [p for p in rel.parts if p not in ("", ".")]
    if not HAS_DIR_FD:
        current = root
        for part in parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                if not create:
                    raise
                os.mkdir(current, 0o755)
                continue
            if _is_link(st):
                raise _link_error(part)
            if not stat.S_ISDIR(st.st_mode):
                raise NotADirectoryError(errno.ENOTDIR, f"{part} is not a folder", part)
        yield _PathFolder(current)
        return
    opened = [os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)]
    try:
        for part in parts:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o755, dir_fd=opened[-1])
            flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
            try:
                opened.append(os.open(part, flags, dir_fd=opened[-1]))
            except OSError as exc:
                # O_NOFOLLOW reports ELOOP for a file but ENOTDIR for a folder
                if exc.errno == errno.ELOOP or _lstat_is_link(part, opened[-1]):
                    raise _link_error(part) from None
                raise
        yield _FdFolder(opened[-1])
    finally:
        for fd in opened:
            os.close(fd)


# ------------------------------------------------------------------- locks


class LockHeld(Exception):
    """Another process holds the lock; ``holder`` is what it wrote there."""

    def __init__(self, holder: str) -> None:
        super().__init__(holder)
        self.holder = holder


#: msvcrt locks a byte range that readers may not touch, so the lock sits far
#: past the holder's name at offset 0, which a refused process reads.
_MSVCRT_LOCK_AT = 1 << 30


@contextlib.contextmanager
def exclusive_lock(path: Path, holder: str) -> Iterator[None]:
    """Hold ``path`` for this process alone, writing ``holder`` into it.

    The lock dies with the process (``flock``, ``msvcrt.locking``), so a
    crash never leaves it held; only the last-resort lock file, for an OS
    with neither, has to be removed by hand after a crash, and says so.

    :raises LockHeld: another process holds it.
    """
    if not HAS_FLOCK and _msvcrt is None:
        with _lock_file(path, holder):
            yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | _O_BINARY, 0o600)
    try:
        if not _try_lock(fd):
            other = pread(fd, 200, 0).decode(errors="replace").strip()
            raise LockHeld(other or "another process")
        os.ftruncate(fd, 0)
        pwrite(fd, holder.encode(), 0)
        yield
        if not HAS_FLOCK:
            os.lseek(fd, _MSVCRT_LOCK_AT, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_UNLCK, 1)  # type: ignore[union-attr]
    finally:
        os.close(fd)  # also releases the lock, whatever happened


def _try_lock(fd: int) -> bool:
    try:
        if HAS_FLOCK:
            _fcntl.flock(fd, _fcntl.LOCK_EX | _fcntl.LOCK_NB)  # type: ignore[union-attr]
        else:
            os.lseek(fd, _MSVCRT_LOCK_AT, os.SEEK_SET)
            _msvcrt.locking(fd, _msvcrt.LK_NBLCK, 1)  # type: ignore[union-attr]
    except OSError:  # BlockingIOError (flock), PermissionError (msvcrt)
        return False
    return True


@contextlib.contextmanager
def _lock_file(path: Path, holder: str) -> Iterator[None]:
    held = path.with_name(f"{path.name}.held")
    try:
        fd = os.open(held, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o600)
    except FileExistsError:
        try:
            other = held.read_text(errors="replace").strip() or "another process"
        except OSError:
            other = "another process"
        raise LockHeld(f"{other} (if it is not running, remove {held})") from None
    try:
        try:
            os.write(fd, holder.encode())
        finally:
            os.close(fd)
        yield
    finally:
        held.unlink(missing_ok=True)


# --------------------------------------------------------- socket timeouts


def set_send_timeout(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking with sends that give up after ``seconds`` of no progress.

    A send that gives up raises ``BlockingIOError`` (timeval) or
    ``TimeoutError`` (fallback); both are ``OSError``.
    """
    if HAS_TIMEVAL_TIMEOUTS:
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, _timeval(seconds))
    else:
        sock.settimeout(seconds)


def set_recv_timeout(sock: socket.socket, seconds: float) -> None:
    """Make ``sock`` blocking with receives that wake after ``seconds`` with nothing.

    A receive that wakes raises ``BlockingIOError`` (timeval) or
    ``TimeoutError`` (fallback).
    """
    if HAS_TIMEVAL_TIMEOUTS:
        sock.setblocking(True)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, _timeval(seconds))
    else:
        sock.settimeout(seconds)


# ------------------------------------------------------ congestion control

#: Loss-based congestion controls for data sends, best first. Linux lets any
#: user pick Reno; CUBIC needs privilege where the system does not list it as
#: allowed.
LOSS_BASED = ("cubic", "reno")


def prefer_loss_based(sock: socket.socket) -> str | None:
    """Send on ``sock`` with a congestion control that backs off on loss; which
    one, or None where the OS keeps its own (it is CUBIC on Windows and macOS).

    A LAN party's switch has shallow buffers that many flows share. A system
    default of BBR (v1) keeps sending into them when they drop, and a crowd
    swarming one game lost 12-15 % of its segments that way in the lab, against
    3-5 % with CUBIC (docs/decisions.md).
    """
    if not HAS_TCP_CONGESTION:
        return None
    for name in LOSS_BASED:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
        except OSError:
            continue
        return name
    return None


# ---------------------------------------------------- the private endpoint

#: AF_UNIX addresses hold at most 107 bytes on Linux.
_MAX_UNIX_ADDRESS = 100
_ENDPOINT_KIND = "lanspread-control"


@contextlib.contextmanager
def unix_address(path: Path) -> Iterator[str]:
    """An address ``bind``/``connect`` accept for ``path``, however long it is.

    A path over the AF_UNIX limit is reached through its folder's descriptor
    (``/proc/self/fd/N/name``), which the kernel resolves like the full path.
    """
    if len(os.fsencode(path)) <= _MAX_UNIX_ADDRESS:
        yield str(path)
        return
    if not HAS_PROC_FD:
        raise OSError(errno.ENAMETOOLONG, f"the socket path {path} is too long here", str(path))
    fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{fd}/{path.name}"
    finally:
        os.close(fd)


async def connect_private(path: Path) -> TransportStream:
    """A stream to the endpoint a peer published at ``path``.

    A client follows what the peer published, not its own capabilities: a
    Unix socket exists only where the peer could make one; otherwise the
    file there names a loopback port, and its token goes first, as one line.

    :raises FileNotFoundError: nothing is there.
    :raises ConnectionRefusedError: what is there was left by a peer that died.
    :raises ValueError: something is there that no peer made.
    """
    if stat.S_ISSOCK(os.lstat(path).st_mode):
        with unix_address(path) as address:
            return await open_stream(address)
    record = _read_record(path)
    if record is None:
        raise ValueError(f"{path} is not a control endpoint")
    port, token = record
    stream = await open_stream(("127.0.0.1", port))
    await stream.send(token + b"\n")
    return stream


def _read_record(path: Path) -> tuple[int, bytes] | None:
    try:
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return None
        data = json.loads(path.read_bytes()[:4096])
        port, token = data["port"], data["token"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    ok = data.get("kind") == _ENDPOINT_KIND and isinstance(port, int) and isinstance(token, str)
    return (port, token.encode("ascii")) if ok and token.isascii() else None


class PrivateListener:
    """A listening socket only this user can reach, published at ``path``.

    On a Unix socket the file mode keeps others out; on loopback TCP, where
    any local user can connect, a client must first send :attr:`token`,
    which only an owner-only file at ``path`` tells (check it with
    :meth:`admits`). :meth:`close` removes ``path`` if it is still ours.
    """

    def __init__(self, sock: socket.socket, path: Path, token: bytes | None) -> None:
        self.sock = sock
        self.path = path
        self.token = token
        self._inode = os.lstat(path).st_ino

    def admits(self, first_line: bytes) -> bool:
        """Whether a client's first line is the token (always, on a Unix socket)."""
        if self.token is None:
            return True
        return hmac.compare_digest(first_line.strip(), self.token)

    def close(self) -> None:
        self.sock.close()
        with contextlib.suppress(OSError):
            if os.lstat(self.path).st_ino == self._inode:
                os.unlink(self.path)


def listen_private(path: Path) -> PrivateListener:
    """Listen where only this user can connect, replacing an endpoint a killed peer left.

    Replacing is safe only while the caller holds the state directory's lock.

    :raises OSError: cannot listen, or ``path`` is something else (then the
        message says to remove it).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    _remove_stale(tmp)
    sock: socket.socket | None = None
    try:
        if HAS_UNIX_SOCKETS:
            # bound under a temporary name and made 0600 before it is visible
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            with unix_address(tmp) as address:
                sock.bind(address)
            os.chmod(tmp, 0o600)
            token = None
        else:
            sock = socket.create_server(("127.0.0.1", 0))
            token = secrets.token_hex(32).encode("ascii")
            record = {"kind": _ENDPOINT_KIND, "port": sock.getsockname()[1]}
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_BINARY, 0o600)
            with open(fd, "wb") as fh:
                fh.write(json.dumps({**record, "token": token.decode()}).encode())
        sock.listen(16)
        _remove_stale(path)
        os.replace(tmp, path)
    except BaseException:
        if sock is not None:
            sock.close()
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return PrivateListener(sock, path, token)


def _remove_stale(path: Path) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode) and _read_record(path) is None:
        raise FileExistsError(
            errno.EEXIST, f"{path} exists and is not a control endpoint; remove it", str(path)
        )
    os.unlink(path)


# ------------------------------------------------------------------ faults


def kill_self() -> None:
    """End this process at once, running no clean-up, as a power cut would."""
    if HAS_SIGKILL:
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)  # 128 + SIGKILL, what a shell reports for a killed process


# ------------------------------------------------------------------ limits

#: a hard limit of "unlimited" is met with this many (macOS refuses more anyway)
OPEN_FILES_CEILING = 1 << 20


def raise_open_files_limit() -> int | None:
    """Raise the soft limit on open files to the hard one, and log it at INFO.

    A download keeps files and connections open, and the common soft limit of
    1,024 is easily met. Returns the soft limit now, or None where the OS has
    no such limit to read (the fallback: nothing is changed).
    """
    resource = _resource
    if resource is None or not hasattr(resource, "RLIMIT_NOFILE"):
        log.info("open files: the limit is the operating system's (it cannot be read here)")
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    infinity = getattr(resource, "RLIM_INFINITY", -1)
    target = OPEN_FILES_CEILING if hard == infinity else hard
    if soft != infinity and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.info("open files: cannot raise the limit from %d to %d: %s", soft, target, exc)
    limit = int(soft)
    log.info("open files: at most %d (hard limit %s)", limit, "none" if hard == infinity else hard)
    return limit
