"""Writing a provider's stream to a folder: the only place archive bytes hit disk.

:class:`TreeWriter` is an :class:`~lanspread_core.archive.protocol.EntrySink` that
creates each entry under a destination folder. It refuses every entry kind but
files and dirs, validates every name with :func:`safe_relpath`, never follows a
symlink, and checks each file's size and CRC32 against the headers.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path

from lanspread_core.archive.entrypath import is_root_name, safe_relpath
from lanspread_core.archive.protocol import (
    Entry,
    EntryKind,
    EntrySink,
    SinkWrapper,
    StreamInstallProvider,
)
from lanspread_core.errors import DiskWriteError, UnsafeEntryError, VerificationError
from lanspread_core.library.layout import OWNED_MARKER

_WRITABLE = (EntryKind.FILE, EntryKind.DIR)


def check_entry(entry: Entry) -> None:
    """Raise :class:`UnsafeEntryError` unless ``entry`` may be written."""
    if entry.kind is EntryKind.DIR and is_root_name(entry.path):
        return
    if entry.kind not in _WRITABLE:
        raise UnsafeEntryError(
            f"archive entry {entry.path!r} is a {entry.kind}; links and devices are refused"
        )
    safe_relpath(entry.path)


def check_entries(entries: Iterable[Entry]) -> None:
    for entry in entries:
        check_entry(entry)


class TreeWriter:
    """Sink that writes files and dirs under ``dest``, verifying each file."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._fd: int | None = None
        self._crc = 0
        self._written = 0

    def _make_dirs(self, rel: Path) -> Path:
        """Create ``dest/rel`` as real directories, refusing any symlink on the way."""
        current = self.dest
        for part in rel.parts:
            current = current / part
            try:
                st = os.lstat(current)
            except FileNotFoundError:
                try:
                    os.mkdir(current)
                except OSError as exc:
                    raise DiskWriteError(f"cannot create folder {rel}: {exc.strerror}") from exc
                continue
            if not stat.S_ISDIR(st.st_mode):
                raise UnsafeEntryError(
                    f"archive path {str(rel)!r} passes through {part!r}, which is not a folder"
                )
        return current

    def begin(self, entry: Entry) -> None:
        check_entry(entry)
        if entry.kind is EntryKind.DIR and is_root_name(entry.path):
            return
        rel = Path(safe_relpath(entry.path))
        if entry.kind is EntryKind.DIR:
            self._make_dirs(rel)
            return
        parent = self._make_dirs(rel.parent) if rel.parent != Path(".") else self.dest
        target = parent / rel.name
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | getattr(os, "O_BINARY", 0)
        try:
            self._fd = os.open(target, flags, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeEntryError(f"{entry.path!r} would be written through a link") from exc
            raise DiskWriteError(f"cannot create {entry.path!r}: {exc.strerror}") from exc
        self._crc = 0
        self._written = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._fd is not None, "write() outside begin()/end()"
        view = memoryview(data)
        self._crc = zlib.crc32(view, self._crc)
        self._written += len(view)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise DiskWriteError(f"cannot write to {self.dest}: {exc.strerror}") from exc

    def end(self, entry: Entry) -> None:
        if entry.kind is EntryKind.DIR:
            return
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        if self._written != entry.size:
            raise VerificationError(
                f"{entry.path!r} unpacked to {self._written} bytes, the archive says {entry.size}"
            )
        if entry.crc32 is not None and self._crc != entry.crc32:
            raise VerificationError(
                f"{entry.path!r} has CRC32 {self._crc:08x}, the archive says {entry.crc32:08x}"
            )

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _contents(path: Path) -> list[Path]:
    """A folder's children, not counting a transaction's ownership marker."""
    return [c for c in path.iterdir() if c.name != OWNED_MARKER]


def _empty_dir(path: Path) -> None:
    for child in _contents(path):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def unpack_via_stream(
    provider: StreamInstallProvider,
    archives: Sequence[Path],
    dest: Path,
    sink_wrapper: SinkWrapper | None = None,
) -> None:
    """Unpack by streaming into a :class:`TreeWriter`; undo everything on failure.

    ``dest`` must be missing or an empty folder (an install's staging folder
    may hold its ownership marker), so undoing is exact: the folder is removed
    if this call created it, emptied otherwise.
    """
    created = not dest.exists()
    if not created and (not dest.is_dir() or _contents(dest)):
        raise UnsafeEntryError(f"unpack target {dest} must be a missing or empty folder")
    check_entries(provider.entries(archives))
    dest.mkdir(parents=True, exist_ok=True)
    writer = TreeWriter(dest)
    sink: EntrySink = sink_wrapper(writer) if sink_wrapper else writer
    try:
        provider.stream(archives, sink)
    except BaseException:
        writer.close()
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            _empty_dir(dest)
        raise
    writer.close()
