"""The files a download writes into, pre-sized and written at offsets.

Chunks arrive from several peers in any order, so every file of the manifest
exists at its final size from the start and each verified chunk is written
where it belongs with ``os.pwrite``, from any worker thread. Opening never
truncates (``O_CREAT`` without ``O_TRUNC``): a file may already hold chunks
that other peers delivered, or a previous attempt did. Its size is set to
the manifest's: extended when shorter; cut when longer, because bytes past
the manifest size belong to no chunk (a stale tail of an older version) and
would otherwise stay in the finished file.

Paths come from a manifest that came from the network. Each is checked
against the download rule (relative, no ``..``, not under ``local/`` or a
reserved name, not ``version.ini``), and every directory is entered with
``O_NOFOLLOW`` relative to its parent, so a symlink planted anywhere in the
game root cannot redirect a write outside it.

Blocking throughout: create it and remove a payload in a worker thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from lanspread_core.errors import DiskWriteError
from lanspread_core.library.layout import UnsafeDownloadPath, download_path
from lanspread_core.library.manifest import Manifest

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW


class DownloadFiles:
    """Every file of ``manifest`` under ``root``, open for :meth:`pwrite`.

    :raises UnsafeDownloadPath: a path is unsafe or runs through a symlink.
    :raises DiskWriteError: a file cannot be created or sized (full disk,
        read-only, a folder in the way).
    """

    def __init__(self, root: Path, manifest: Manifest) -> None:
        self.root = root
        self.manifest = manifest
        self._sizes = {f.path: f.size for f in manifest.files}
        self._fds: dict[str, int] = {}
        self._cond = threading.Condition()
        self._writing = 0
        self._closed = False
        try:
            for entry in manifest.files:
                self._fds[entry.path] = self._open(entry.path, entry.size)
        except BaseException:
            self.close()
            raise

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
            fd = self._fds[path]
            self._writing += 1
        try:
            while view:
                written = os.pwrite(fd, view, offset)
                view = view[written:]
                offset += written
        except OSError as exc:
            raise DiskWriteError(f"cannot write {path} ({exc.strerror or exc})") from None
        finally:
            with self._cond:
                self._writing -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Close every file once writes in flight have finished (idempotent)."""
        with self._cond:
            self._closed = True
            self._cond.wait_for(lambda: self._writing == 0)
            fds, self._fds = self._fds, {}
        for fd in fds.values():
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
            with _parent_dir(self.root, rel, create=False) as parent:
                if parent is not None:
                    with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                        os.unlink(rel.name, dir_fd=parent)
        folders.discard(PurePosixPath("."))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with _parent_dir(self.root, folder, create=False) as parent:
                if parent is not None:
                    with contextlib.suppress(OSError):  # not empty, gone, or a link
                        os.rmdir(folder.name, dir_fd=parent)

    # --------------------------------------------------------------- helpers
    def _open(self, path: str, size: int) -> int:
        rel = download_path(path)
        with _parent_dir(self.root, rel, create=True) as parent:
            assert parent is not None
            try:
                fd = os.open(
                    rel.name,
                    os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK,
                    0o644,
                    dir_fd=parent,
                )
            except OSError as exc:
                raise _open_error(path, exc, _is_link(rel.name, parent)) from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeDownloadPath(f"{path!r} exists and is not a regular file")
            os.set_blocking(fd, True)
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
def _parent_dir(root: Path, rel: PurePosixPath, *, create: bool) -> Iterator[int | None]:
    """The open parent folder of ``rel`` under ``root``, entered without
    following links; ``None`` (when not creating) if it does not exist."""
    opened: list[int] = []
    try:
        try:
            parent = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as exc:
            if create:
                raise DiskWriteError(
                    f"cannot open the game folder {root} ({exc.strerror})"
                ) from None
            yield None
            return
        opened.append(parent)
        for part in rel.parts[:-1]:
            if create:
                try:
                    os.mkdir(part, 0o755, dir_fd=parent)
                except FileExistsError:
                    pass
                except OSError as exc:
                    raise DiskWriteError(
                        f"cannot create the folder {part} for {rel} ({exc.strerror})"
                    ) from None
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=parent)
            except OSError as exc:
                if not create:
                    yield None
                    return
                raise _open_error(rel.as_posix(), exc, _is_link(part, parent)) from None
            parent = child
            opened.append(parent)
        yield parent
    finally:
        for fd in opened:
            os.close(fd)


def _is_link(name: str, parent: int) -> bool:
    """Whether ``name`` in ``parent`` is a symlink (``O_NOFOLLOW`` reports
    ``ELOOP`` for a file but ``ENOTDIR`` for a folder)."""
    try:
        return stat.S_ISLNK(os.lstat(name, dir_fd=parent).st_mode)
    except OSError:
        return False


def _open_error(path: str, exc: OSError, is_link: bool) -> Exception:
    if is_link or exc.errno in (errno.ELOOP, errno.EMLINK):
        return UnsafeDownloadPath(f"{path!r} is or runs through a symbolic link; refused")
    if exc.errno == errno.ENOTDIR:
        return DiskWriteError(f"cannot create {path}: a file is in the way of its folder")
    if exc.errno == errno.EISDIR:
        return DiskWriteError(f"cannot create {path}: a folder of that name is in the way")
    return DiskWriteError(f"cannot create {path} ({exc.strerror or exc})")
