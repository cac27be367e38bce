"""The files a download writes into, pre-sized and written at offsets.

Chunks arrive from several peers in any order, so every file of the manifest
exists at its final size from the start and each verified chunk is written
where it belongs with a positioned write (``os.pwrite``, see
:mod:`~lanspread_core.system.portable`), from any worker thread. Opening never
truncates (``O_CREAT`` without ``O_TRUNC``): a file may already hold chunks
that other peers delivered, or a previous attempt did. Its size is set to
the manifest's: extended when shorter; cut when longer, because bytes past
the manifest size belong to no chunk (a stale tail of an older version) and
would otherwise stay in the finished file.

Paths come from a manifest that came from the network. Each is checked
against the download rule (relative, no ``..``, not under ``local/`` or a
reserved name, not ``version.ini``), and every directory is entered without
following a link (:func:`~lanspread_core.system.portable.folder_beneath`), so a
symlink planted anywhere in the game root cannot redirect a write outside it.

A game may hold more files than a process may have open (10,000 files
against the common limit of 1,024), so only the :data:`MAX_OPEN` most recently
written stay open: every file is created and sized up front and closed, and
a write reopens its file (again without following a link) when it has been
evicted. Chunks are planned in order, so writes cluster and reopening is rare.

Blocking throughout: create it and remove a payload in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from lanspread_core.errors import DiskWriteError
from lanspread_core.library.layout import UnsafeDownloadPath, download_path
from lanspread_core.library.manifest import Manifest
from lanspread_core.system.portable import Folder, folder_beneath, pwrite

#: Files of one download open at once (a file being written is never closed).
MAX_OPEN = 128


class DownloadFiles:
    """Every file of ``manifest`` under ``root``, sized, written by :meth:`pwrite`.

    At most ``max_open`` files are open at once, plus any being written.

    :raises UnsafeDownloadPath: a path is unsafe or runs through a symlink.
    :raises DiskWriteError: a file cannot be created or sized (full disk,
        read-only, a folder in the way).
    """

    def __init__(self, root: Path, manifest: Manifest, *, max_open: int = MAX_OPEN) -> None:
        self.root = root
        self.manifest = manifest
        self._sizes = {f.path: f.size for f in manifest.files}
        #: open files, least recently written first: path -> [fd, writes in flight]
        self._fds: OrderedDict[str, list[int]] = OrderedDict()
        self._max_open = max(1, max_open)
        self._cond = threading.Condition()
        self._writing = 0
        self._closed = False
        try:
            for entry in manifest.files:
                fd = self._open(entry.path, entry.size)
                with self._cond:
                    self._fds[entry.path] = [fd, 0]
                    self._evict()
        except BaseException:
            self.close()
            raise

    @property
    def open_count(self) -> int:
        """Files open now."""
        with self._cond:
            return len(self._fds)

    # ---------------------------------------------------------------- writes
    def pwrite(self, path: str, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Write ``data`` at ``offset`` of ``path`` (thread safe).

        :raises ValueError: ``path`` is not in the manifest, or the write
            would run past the file's manifest size.
        :raises DiskWriteError: the disk refused the write.
        """
        view = memoryview(data).cast("B")
        size = self._sizes.get(path)
        if size is None:
            raise ValueError(f"{path!r} is not a file of this download")
        if offset < 0 or offset + len(view) > size:
            raise ValueError(f"a write of {len(view)} bytes at {offset} overruns {path!r}")
        with self._cond:
            if self._closed:
                raise DiskWriteError(f"the download files of {self.root.name} are closed")
            entry = self._fds.get(path)
            if entry is None:
                entry = self._fds[path] = [self._reopen(path), 0]
            else:
                self._fds.move_to_end(path)
            entry[1] += 1
            self._writing += 1
            self._evict()
        try:
            pwrite(entry[0], view, offset)
        except OSError as exc:
            raise DiskWriteError(f"cannot write {path} ({exc.strerror or exc})") from None
        finally:
            with self._cond:
                entry[1] -= 1
                self._writing -= 1
                self._evict()
                self._cond.notify_all()

    def close(self) -> None:
        """Close every file once writes in flight have finished (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: self._writing == 0)
            fds, self._fds = self._fds, OrderedDict()
        for fd, _ in fds.values():
            os.close(fd)

    def remove_payload(self) -> None:
        """Delete exactly the manifest's files, then the folders left empty.

        For a cancelled download: ``local/`` and anything not in the manifest
        stay, and nothing is followed through a symlink.
        """
        self.close()
        folders: set[PurePosixPath] = set()
        for entry in self.manifest.files:
            try:
                rel = download_path(entry.path)
            except UnsafeDownloadPath:
                continue
            folders.update(rel.parents)
            with _reachable(self.root, rel.parent) as parent:
                if parent is not None:
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        parent.unlink(rel.name)
        folders.discard(PurePosixPath("."))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with _reachable(self.root, folder.parent) as parent:
                if parent is not None:
                    with contextlib.suppress(OSError):  # not empty, gone, or a link
                        parent.rmdir(folder.name)

    # --------------------------------------------------------------- helpers
    def _evict(self) -> None:
        """Close the least recently written idle files past the bound (lock held)."""
        if len(self._fds) <= self._max_open:
            return
        for path in [p for p, (_, busy) in self._fds.items() if not busy]:
            if len(self._fds) <= self._max_open:
                return
            os.close(self._fds.pop(path)[0])

    def _reopen(self, path: str) -> int:
        """Open an evicted file again, as created: never following a link."""
        rel = download_path(path)
        try:
            with folder_beneath(self.root, rel.parent, create=False) as folder:
                fd = folder.open(rel.name, os.O_RDWR)
        except OSError as exc:
            raise _open_error(path, exc) from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise UnsafeDownloadPath(f"{path!r} exists and is not a regular file")
        return fd

    def _open(self, path: str, size: int) -> int:
        rel = download_path(path)
        try:
            with folder_beneath(self.root, rel.parent, create=True) as folder:
                fd = folder.open(rel.name, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise _open_error(path, exc) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeDownloadPath(f"{path!r} exists and is not a regular file")
            if st.st_size != size:
                os.ftruncate(fd, size)  # extend, or drop a stale tail past every chunk
        except OSError as exc:
            os.close(fd)
            raise DiskWriteError(f"cannot size {path} to {size} bytes ({exc.strerror})") from None
        except BaseException:
            os.close(fd)
            raise
        return fd


@contextlib.contextmanager
def _reachable(root: Path, rel: PurePosixPath) -> Iterator[Folder | None]:
    """The folder ``root/rel`` entered without following links; None when it is
    gone or behind a link (errors inside the block are the caller's)."""
    with contextlib.ExitStack() as stack:
        try:
            folder = stack.enter_context(folder_beneath(root, rel, create=False))
        except OSError:
            yield None
            return
        yield folder


def _open_error(path: str, exc: OSError) -> Exception:
    if exc.errno == errno.ELOOP:
        return UnsafeDownloadPath(f"{path!r} is or runs through a symbolic link; refused")
    if exc.errno == errno.ENOTDIR:
        return DiskWriteError(f"cannot create {path}: a file is in the way of its folder")
    if exc.errno == errno.EISDIR:
        return DiskWriteError(f"cannot create {path}: a folder of that name is in the way")
    return DiskWriteError(f"cannot create {path} ({exc.strerror or exc})")
