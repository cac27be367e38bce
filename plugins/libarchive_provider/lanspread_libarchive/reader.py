"""One libarchive reader for a single archive or a whole multi-volume set.

libarchive-c opens one file at a time, but multi-volume RAR sets need
``archive_read_open_filenames``, which libarchive-c 5.3 does not wrap; this
module binds it (and two small queries) through libarchive-c's own ctypes
handle. It also narrows what libarchive will accept: ``support_format_all``
includes ``mtree``, a text format whose entries can name *local* files to read
(a shared ``.eti`` could then leak the sender's files into a stream), and
``empty``, which takes a zero-byte file for an empty archive.

Every libarchive failure leaves here as one :class:`ArchiveError` sentence
naming the archive; nothing else is translated, so an exception raised by a
caller's sink passes through untouched.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from libarchive import ffi
from libarchive.entry import ArchiveEntry
from libarchive.exception import ArchiveError as LibarchiveError
from libarchive.read import ArchiveRead

from lanspread_core.errors import ArchiveError

#: Formats this provider reads. Deliberately not "all": see the module docstring.
FORMATS = ("7zip", "cab", "cpio", "iso9660", "lha", "rar", "rar5", "tar", "xar", "zip")

#: Bytes per read; each block handed to a sink is a fresh ``bytes`` of at most this.
BLOCK = 1 << 20
#: libarchive's own read-ahead from disk.
_IO_BLOCK = 1 << 16

# archive_format() families (archive.h, ARCHIVE_FORMAT_BASE_MASK = 0xff0000).
_FAMILIES = {
    0x10000: "cpio",
    0x30000: "tar",
    0x40000: "iso9660",
    0x50000: "zip",
    0xA0000: "xar",
    0xB0000: "lha",
    0xC0000: "cab",
    0xD0000: "rar3",
    0xE0000: "7z",
    0x100000: "rar5",
}
RAR_FAMILIES = frozenset({"rar3", "rar5"})
_FILTER_SUFFIX = {"gzip": "gz", "bzip2": "bz2", "compress": "Z", "zstd": "zst"}


def _bind(name: str, argtypes: list[Any], restype: Any) -> Callable[..., int]:
    # Item access gives a fresh function object; attribute access would return
    # (and let us reconfigure) the one libarchive-c already set up.
    func = ffi.libarchive[name]
    func.argtypes = argtypes
    func.restype = restype
    return func


_open_filenames = _bind(
    "archive_read_open_filenames",
    [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p), ctypes.c_size_t],
    ctypes.c_int,
)
_format_code = _bind("archive_format", [ctypes.c_void_p], ctypes.c_int)
_has_encrypted = _bind("archive_read_has_encrypted_entries", [ctypes.c_void_p], ctypes.c_int)
# Unchecked on purpose: libarchive-c's checked read_data logs every ARCHIVE_WARN
# (a bad CRC, say) before returning it, which would print the failure twice.
_read_data = _bind(
    "archive_read_data", [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t], ctypes.c_ssize_t
)


def libarchive_version() -> str:
    """The loaded library's version as ``"3.6.2"``, for messages."""
    n = ffi.version_number()
    return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"


def _error_text(pointer: int) -> str:
    raw = ffi.error_string(pointer)
    return raw.decode("utf-8", "replace").rstrip(".") if raw else ""


def _message(exc: BaseException) -> str:
    if isinstance(exc, LibarchiveError):
        msg = exc.msg
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        return str(msg or "unknown libarchive error").rstrip(".")
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc)


class ReadFailure(ArchiveError):
    """libarchive could not read an archive; ``detail`` is libarchive's own words."""

    def __init__(self, label: str, detail: str) -> None:
        super().__init__(f"cannot read {label}: {detail}")
        self.detail = detail


@contextmanager
def _mapped(label: str) -> Iterator[None]:
    """Turn libarchive and I/O failures inside the block into one ArchiveError."""
    try:
        yield
    except (LibarchiveError, OSError) as exc:
        raise ReadFailure(label, _message(exc)) from exc


class Reader:
    """An open libarchive read handle: headers in archive order, then data blocks."""

    def __init__(self, pointer: int, label: str) -> None:
        self._p = pointer
        self.label = label
        self._entries = iter(ArchiveRead(pointer))
        self._buf: ctypes.Array[ctypes.c_char] | None = None

    def headers(self) -> Iterator[ArchiveEntry]:
        """Each entry header; reading the next one skips the unread data of the last."""
        while True:
            with _mapped(self.label):
                entry = next(self._entries, None)
            if entry is None:
                return
            yield entry

    def blocks(self) -> Iterator[bytes]:
        """The current entry's data as fresh ``bytes`` objects.

        Not libarchive-c's ``get_blocks``: that copies its whole buffer for every
        block (``buf.raw[0:r]``), which costs a full block per small file. A sink
        may queue what it gets, so each block must be a copy, but only of the
        bytes actually read.
        """
        if self._buf is None:
            self._buf = ctypes.create_string_buffer(BLOCK)
        buf = self._buf
        while True:
            n = _read_data(self._p, buf, BLOCK)
            if n == 0:
                return
            if n < 0:  # even ARCHIVE_WARN: the bytes are not what the archive holds
                raise ReadFailure(self.label, _error_text(self._p) or "damaged data")
            yield ctypes.string_at(buf, n)

    @property
    def format(self) -> str:
        """Short format name after the first header: ``"zip"``, ``"tar.gz"``, ``"rar5"``."""
        family = _FAMILIES.get(_format_code(self._p) & 0xFF0000, "unknown")
        suffixes = [_FILTER_SUFFIX.get(name, name) for name in self._filter_names()]
        return ".".join([family, *suffixes])

    def _filter_names(self) -> list[str]:
        names = ArchiveRead(self._p).filter_names
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names if n]

    @property
    def seen_encrypted(self) -> bool:
        """True once libarchive has met an encrypted entry (or encrypted headers)."""
        return _has_encrypted(self._p) == 1


@contextmanager
def open_reader(volumes: Sequence[Path], label: str) -> Iterator[Reader]:
    """Open ``volumes`` (one archive, or every volume of a set in order) as one stream."""
    if not volumes:
        raise ValueError("open_reader needs at least one file")
    with _mapped(label):
        pointer = ffi.read_new()
    try:
        with _mapped(label):
            ffi.get_read_filter_function("all")(pointer)
            for name in FORMATS:
                try:
                    ffi.get_read_format_function(name)(pointer)
                except ValueError:  # not compiled into this libarchive
                    continue
            if len(volumes) == 1:
                ffi.read_open_filename_w(pointer, os.fspath(volumes[0]), _IO_BLOCK)
            else:
                names = [os.fsencode(v) for v in volumes]
                array = (ctypes.c_char_p * (len(names) + 1))(*names, None)
                if _open_filenames(pointer, array, _IO_BLOCK) < ffi.ARCHIVE_WARN:
                    raise LibarchiveError(_error_text(pointer) or "cannot open the volumes")
        yield Reader(pointer, label)
    finally:
        ffi.read_free(pointer)
