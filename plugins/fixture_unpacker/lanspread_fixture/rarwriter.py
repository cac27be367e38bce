"""A small RAR5 writer that only *stores* (method 0, no compression).

Why it exists: Lanspread's game archives are RAR files, and its tests and
benchmarks need many of them, some of several GiB, made on the spot and
byte-identical on every machine. The ``rar`` tool is non-free and not
installed anywhere we run, so this module writes the container format of the
RAR 5.0 technote directly. Storing keeps it tiny: no compressor, the data
area of each file is its bytes verbatim, and every reader (unrar, libarchive,
the pure-Python ``rarfile``) can read it.

The layout written, per the RAR 5.0 archive format technote::

    signature            52 61 72 21 1A 07 01 00   ("Rar!\\x1a\\x07\\x01\\x00")
    main archive header  type 1, archive flags 0 (not a volume, not solid)
    file header          type 2, one per file or directory, data area follows
    ...
    end of archive       type 5, flags 0 (last volume)

Every header is ``CRC32 (uint32 LE) | header size (vint) | type (vint) |
header flags (vint) | [extra size] | [data size] | fields...`` where the CRC
covers everything from the header-size vint to the end of the header, and the
size counts the bytes after its own vint. A *vint* holds 7 bits per byte, low
bits first, with the top bit set on every byte but the last.

A file header's fields are: file flags (0x1 directory, 0x2 Unix mtime
present, 0x4 data CRC32 present), unpacked size, attributes, [mtime uint32],
[data CRC32 uint32], compression info (0 here: algorithm version 0, method 0
= store, smallest dictionary), host OS (1 = Unix, so attributes are a Unix
mode), name length and the UTF-8 name with ``/`` separators. Every file
header, directories included, carries the *data area* header flag (0x2) with
its data size, even when that size is 0, because libarchive refuses file
headers without it (WinRAR always writes it too).

:meth:`RarWriter.add_file_from` streams: it writes the header with a zero
CRC placeholder, streams the data while computing its CRC32, then seeks back
and rewrites the (same-length) header with the real data CRC and header CRC.
A multi-GiB file therefore never sits in memory.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from lanspread_fixture.counted import write_counted

SIGNATURE = b"Rar!\x1a\x07\x01\x00"

# Header types.
HEAD_MAIN = 1
HEAD_FILE = 2
HEAD_END = 5

# Flags common to all headers.
HFL_EXTRA = 0x0001
HFL_DATA = 0x0002

# File header flags.
FHFL_DIRECTORY = 0x0001
FHFL_UTIME = 0x0002
FHFL_CRC32 = 0x0004

HOST_UNIX = 1
FILE_MODE = 0o100644
DIR_MODE = 0o040755

#: A fixed modification time (2024-01-01T00:00:00Z), so archives are
#: byte-identical no matter when or where they were made.
DEFAULT_MTIME = 1_704_067_200

_MAX_HEADER = 2 * 1024 * 1024  # readers refuse larger headers


def vint(value: int) -> bytes:
    """Encode ``value`` as a RAR5 variable-length integer (7 bits a byte, low first)."""
    if value < 0:
        raise ValueError(f"vint cannot hold a negative number ({value})")
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _block(body: bytes) -> bytes:
    """Frame a header body (from the type field on) with its size vint and CRC32."""
    size = vint(len(body))
    if len(size) + len(body) > _MAX_HEADER:
        raise ValueError("RAR5 header would exceed 2 MiB")
    framed = size + body
    return struct.pack("<I", zlib.crc32(framed)) + framed


def _encode_name(name: str) -> bytes:
    """Validate and encode an archive name: UTF-8, ``/``-separated, no trailing slash."""
    clean = name.rstrip("/")
    if not clean:
        raise ValueError(f"archive name {name!r} is empty")
    if "\x00" in clean:
        raise ValueError(f"archive name {name!r} contains a NUL byte")
    return clean.encode("utf-8")


class RarWriter:
    """Write a stored-mode RAR5 archive to ``path``; use it as a context manager.

    Entries are written in call order, which is the order every reader
    reports them in. Names are stored as given (UTF-8, ``/`` separators); the
    writer does not judge whether a name is *safe*, so tests can also make
    hostile archives. If the ``with`` block raises, the partial file is
    removed, so a failed write never leaves something that looks like an
    archive.

    :param mtime: Unix time stored for every entry, or ``None`` to store none.
    """

    def __init__(self, path: Path | str, mtime: int | None = DEFAULT_MTIME) -> None:
        self.path = Path(path)
        self.mtime = mtime
        self._fh: BinaryIO | None = None
        self._closed = False

    # -- context management -------------------------------------------------

    def __enter__(self) -> RarWriter:
        self.open()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def open(self) -> None:
        """Create the file and write the signature and main archive header."""
        if self._fh is not None or self._closed:
            raise ValueError("RarWriter.open() called twice")
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed by close()/abort()
        self._fh.write(SIGNATURE)
        # Main archive header: no extra area, archive flags 0.
        self._fh.write(_block(vint(HEAD_MAIN) + vint(0) + vint(0)))

    def close(self) -> None:
        """Write the end-of-archive header and close the file."""
        fh = self._file()
        fh.write(_block(vint(HEAD_END) + vint(0) + vint(0)))
        fh.close()
        self._fh = None
        self._closed = True

    def abort(self) -> None:
        """Close and delete the unfinished archive."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        self._closed = True
        self.path.unlink(missing_ok=True)

    def _file(self) -> BinaryIO:
        if self._fh is None:
            raise ValueError("RarWriter is not open (use it in a 'with' block)")
        return self._fh

    # -- entries --------------------------------------------------------------

    def _file_header(self, name: bytes, size: int, crc: int | None, is_dir: bool) -> bytes:
        file_flags = 0
        if is_dir:
            file_flags |= FHFL_DIRECTORY
        if self.mtime is not None:
            file_flags |= FHFL_UTIME
        if crc is not None:
            file_flags |= FHFL_CRC32
        body = bytearray()
        body += vint(HEAD_FILE)
        body += vint(HFL_DATA)
        body += vint(0 if is_dir else size)  # data size: stored, so packed == unpacked
        body += vint(file_flags)
        body += vint(0 if is_dir else size)  # unpacked size
        body += vint(DIR_MODE if is_dir else FILE_MODE)
        if self.mtime is not None:
            body += struct.pack("<I", self.mtime & 0xFFFFFFFF)
        if crc is not None:
            body += struct.pack("<I", crc)
        body += vint(0)  # compression info: version 0, method 0 (store)
        body += vint(HOST_UNIX)
        body += vint(len(name))
        body += name
        return _block(bytes(body))

    def add_dir(self, name: str) -> None:
        """Add a directory entry (a file header with the directory flag, no data)."""
        self._file().write(self._file_header(_encode_name(name), 0, None, is_dir=True))

    def add_file(self, name: str, data: bytes | bytearray | memoryview) -> None:
        """Add a file whose bytes are already in memory (small files)."""
        view = memoryview(data)
        fh = self._file()
        fh.write(self._file_header(_encode_name(name), len(view), zlib.crc32(view), False))
        fh.write(view)

    def add_file_from(self, name: str, size: int, chunks: Iterable[bytes | memoryview]) -> None:
        """Add a file of exactly ``size`` bytes streamed from ``chunks``.

        The header goes out first with a zero CRC placeholder; once the data
        is written, the header is rewritten in place with the real CRC32
        (the header length cannot change, since the CRC is a fixed uint32).

        :raises ValueError: when ``chunks`` yields more or fewer than ``size`` bytes.
        """
        encoded = _encode_name(name)
        fh = self._file()
        start = fh.tell()
        fh.write(self._file_header(encoded, size, 0, False))
        crc = write_counted(fh, name, size, chunks)
        end = fh.tell()
        fh.seek(start, os.SEEK_SET)
        fh.write(self._file_header(encoded, size, crc, False))
        fh.seek(end, os.SEEK_SET)
