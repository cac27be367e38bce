"""Writing a provider's stream to a folder: the only place archive bytes hit disk.

:class:`TreeWriter` is an :class:`~lanspread_core.archive.protocol.EntrySink`
that creates each entry under a destination folder. It takes only a checked
:class:`~lanspread_core.archive.listing.Listing` and refuses, at write time,
whatever the stream does not deliver as announced (an entry out of turn, a
file longer than listed); it never follows a symlink and checks each file's
size and CRC32 against the headers.
"""

from __future__ import annotations

import errno
import os
import shutil
import zlib
from collections.abc import Collection, Sequence
from pathlib import Path

from lanspread_core.archive.entrypath import safe_relpath
from lanspread_core.archive.listing import Announced, Listing, check_entries
from lanspread_core.archive.protocol import (
    Entry,
    EntryKind,
    EntrySink,
    SinkWrapper,
    StreamInstallProvider,
)
from lanspread_core.errors import DiskWriteError, UnsafeEntryError, VerificationError
from lanspread_core.system.portable import folder_beneath


class TreeWriter:
    """Sink that writes the files and dirs of ``listing`` under ``dest``, verifying each file."""

    def __init__(self, dest: Path, listing: Listing) -> None:
        self.dest = dest
        self._announced = Announced(listing)
        self._fd: int | None = None
        self._crc = 0

    def begin(self, entry: Entry) -> None:
        announced = self._announced.begin(entry)
        if announced is None:
            return
        rel = safe_relpath(announced.path)
        try:
            if announced.kind is EntryKind.DIR:
                with folder_beneath(self.dest, rel, create=True):
                    return
            with folder_beneath(self.dest, rel.parent, create=True) as folder:
                self._fd = folder.open(rel.name, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise UnsafeEntryError(f"{entry.path!r} would be written through a link") from None
            if exc.errno == errno.ENOTDIR:
                raise UnsafeEntryError(
                    f"archive path {entry.path!r} passes through a file, not a folder"
                ) from None
            raise DiskWriteError(f"cannot create {entry.path!r}: {exc.strerror}") from None
        self._crc = 0

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self._announced.data(len(view))
        assert self._fd is not None, "a file was announced, so begin() opened it"
        self._crc = zlib.crc32(view, self._crc)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise DiskWriteError(f"cannot write to {self.dest}: {exc.strerror}") from exc

    def end(self, entry: Entry) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        announced = self._announced.end(entry)
        if announced is None or announced.kind is EntryKind.DIR:
            return
        # the archive's CRC where it has one; else the one the caller vouches for
        crc = announced.crc32 if announced.crc32 is not None else entry.crc32
        if crc is not None and self._crc != crc:
            raise VerificationError(
                f"{announced.path!r} has CRC32 {self._crc:08x}, the archive says {crc:08x}"
            )

    def finish(self) -> None:
        """Raise unless every announced entry was written."""
        self._announced.finish()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _contents(path: Path, keep: Collection[str]) -> list[Path]:
    return [c for c in path.iterdir() if c.name not in keep]


def _empty_dir(path: Path, keep: Collection[str]) -> None:
    for child in _contents(path, keep):
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def unpack_via_stream(
    provider: StreamInstallProvider,
    archives: Sequence[Path],
    dest: Path,
    sink_wrapper: SinkWrapper | None = None,
    *,
    listing: Listing | None = None,
    keep: Collection[str] = (),
) -> None:
    """Unpack by streaming into a :class:`TreeWriter`; undo everything on failure.

    ``listing`` is the archives' listing as the caller checked it; without
    one, the provider's listing is taken and checked here, before a byte is
    streamed. ``dest`` must be missing or an empty folder but for the names
    in ``keep`` (an install's staging folder holds its ownership marker), so
    undoing is exact: the folder is removed if this call created it, emptied
    otherwise.
    """
    created = not dest.exists()
    if not created and (not dest.is_dir() or _contents(dest, keep)):
        raise UnsafeEntryError(f"unpack target {dest} must be a missing or empty folder")
    if listing is None:
        listing = check_entries(provider.entries(archives))
    dest.mkdir(parents=True, exist_ok=True)
    writer = TreeWriter(dest, listing)
    sink: EntrySink = sink_wrapper(writer) if sink_wrapper else writer
    try:
        provider.stream(archives, sink)
        writer.finish()
    except BaseException:
        writer.close()
        if created:
            shutil.rmtree(dest, ignore_errors=True)
        else:
            _empty_dir(dest, keep)
        raise
    writer.close()
