"""The Lanspread fixture archive format: a trivially simple, documented container.

Why it exists: it lets the core's install and streaming paths be tested end
to end through a provider whose every byte is understood, without any
third-party archive library, and it lets tests make corrupt, truncated or
hostile archives (``../x``, symlinks) on purpose. It is not for real games.

Layout (all integers little-endian)::

    archive := MAGIC entry* END
    MAGIC   := b"LSFX1\\n"                       6 bytes
    entry   := u32(n) header[n] data[header.size]   with 1 <= n <= 65536
    header  := UTF-8 JSON object, exactly these keys:
               {"path": str, "kind": str, "size": int, "crc32": str | null}
    END     := u32(0) b"LSFX-END\\n"             marks a complete archive

* ``path`` is the member name, ``/``-separated, as it will be unpacked.
* ``kind`` is one of ``file``, ``dir``, ``symlink``, ``hardlink``, ``device``
  (the :class:`~lanspread_core.archive.protocol.EntryKind` values); only files carry
  data, every other kind has ``size`` 0. Links and devices can be *stored*
  so that tests can check the core refuses them.
* ``size`` is the number of data bytes that follow the header.
* ``crc32`` is the CRC32 of the data as 8 lower-case hex digits, or ``null``
  (directories and other data-less kinds).

Nothing may follow ``END``. A reader must treat a missing ``END``, a header
that is not such an object, or data shorter than ``size`` as a corrupt or
truncated archive.

The header is the JSON of :meth:`lanspread_core.archive.protocol.Entry.to_json`, so an
entry round-trips through the format unchanged. The writer streams: for a
file whose CRC is not known up front it writes ``"crc32": "00000000"`` and
patches the 8 hex digits in place once the data is written.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

from lanspread_core.archive.protocol import Entry, EntryKind
from lanspread_core.errors import ArchiveError
from lanspread_fixture.counted import write_counted

MAGIC = b"LSFX1\n"
END_MARK = b"LSFX-END\n"
MAX_HEADER = 65536
CHUNK = 1 << 20

_LEN = struct.Struct("<I")
_CRC_PLACEHOLDER = b'"00000000"'
_KEYS = {"path", "kind", "size", "crc32"}


def is_fixture_archive(path: Path) -> bool:
    """True when ``path`` starts with the fixture magic (a cheap, headers-only check)."""
    with open(path, "rb") as fh:
        return fh.read(len(MAGIC)) == MAGIC


# -- writing ------------------------------------------------------------------


class FixtureWriter:
    """Write a fixture archive to ``path``; use it as a context manager.

    Mirrors :class:`~lanspread_fixture.rarwriter.RarWriter` (``add_dir``,
    ``add_file``, ``add_file_from``) so the game-set generator can write
    either format. Names are stored as given, unchecked, so tests can build
    hostile archives. If the ``with`` block raises, the partial file is
    deleted.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fh: BinaryIO | None = None

    def __enter__(self) -> FixtureWriter:
        self._fh = open(self.path, "wb")  # noqa: SIM115 - closed in __exit__
        self._fh.write(MAGIC)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        fh = self._file()
        self._fh = None
        if exc_type is None:
            fh.write(_LEN.pack(0) + END_MARK)
            fh.close()
        else:
            fh.close()
            self.path.unlink(missing_ok=True)

    def _file(self) -> BinaryIO:
        if self._fh is None:
            raise ValueError("FixtureWriter is not open (use it in a 'with' block)")
        return self._fh

    def _header(self, entry: Entry) -> bytes:
        raw = json.dumps(entry.to_json(), ensure_ascii=False).encode("utf-8")
        if len(raw) > MAX_HEADER:
            raise ValueError(f"fixture header for {entry.path!r} is larger than {MAX_HEADER}")
        return _LEN.pack(len(raw)) + raw

    def add_entry(self, entry: Entry, data: bytes = b"") -> None:
        """Write any entry verbatim (tests use this for links and lying headers)."""
        fh = self._file()
        fh.write(self._header(entry))
        fh.write(data)

    def add_dir(self, name: str) -> None:
        self.add_entry(Entry(name.rstrip("/"), EntryKind.DIR, 0, None))

    def add_file(self, name: str, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        fh = self._file()
        fh.write(self._header(Entry(name, EntryKind.FILE, len(view), zlib.crc32(view))))
        fh.write(view)

    def add_file_from(self, name: str, size: int, chunks: Iterable[bytes | memoryview]) -> None:
        """Stream a file of exactly ``size`` bytes, then patch its CRC into the header.

        :raises ValueError: when ``chunks`` yields more or fewer than ``size`` bytes.
        """
        fh = self._file()
        header = self._header(Entry(name, EntryKind.FILE, size, 0))
        # crc32 is the last key, so the last placeholder in the header is its value.
        crc_at = fh.tell() + header.rindex(_CRC_PLACEHOLDER) + 1
        fh.write(header)
        crc = write_counted(fh, name, size, chunks)
        end = fh.tell()
        fh.seek(crc_at, os.SEEK_SET)
        fh.write(f"{crc:08x}".encode("ascii"))
        fh.seek(end, os.SEEK_SET)


# -- reading ------------------------------------------------------------------


def _read_exact(fh: BinaryIO, n: int, name: str, what: str) -> bytes:
    data = fh.read(n)
    if len(data) != n:
        raise ArchiveError(f"{name} is truncated: it ends inside {what}")
    return data


def _parse_header(raw: bytes, name: str, offset: int) -> Entry:
    """Turn one JSON header into an Entry, or explain in one sentence what is wrong."""
    where = f"{name} is corrupt: the entry header at byte {offset}"
    try:
        data: Any = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ArchiveError(f"{where} is not UTF-8 JSON") from exc
    if not isinstance(data, dict) or set(data) != _KEYS:
        raise ArchiveError(f"{where} must be an object with exactly {sorted(_KEYS)}")
    path, kind, size, crc = data["path"], data["kind"], data["size"], data["crc32"]
    if not isinstance(path, str):
        raise ArchiveError(f"{where} has a path that is not a string")
    if kind not in {k.value for k in EntryKind}:
        raise ArchiveError(f"{where} has an unknown kind {kind!r}")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        raise ArchiveError(f"{where} has an invalid size {size!r}")
    if kind != EntryKind.FILE and size != 0:
        raise ArchiveError(f"{where} gives a {kind} {size} bytes of data")
    if crc is not None and (
        not isinstance(crc, str) or len(crc) != 8 or any(c not in "0123456789abcdef" for c in crc)
    ):
        raise ArchiveError(f"{where} has an invalid crc32 {crc!r}")
    return Entry.from_json(data)


def _next_header(fh: BinaryIO, name: str) -> Entry | None:
    """Read the next entry header; ``None`` at a well-formed END marker."""
    offset = fh.tell()
    (n,) = _LEN.unpack(_read_exact(fh, _LEN.size, name, "an entry header"))
    if n == 0:
        if _read_exact(fh, len(END_MARK), name, "the end marker") != END_MARK:
            raise ArchiveError(f"{name} is corrupt: bad end marker at byte {offset}")
        if fh.read(1):
            raise ArchiveError(f"{name} is corrupt: there are bytes after its end marker")
        return None
    if n > MAX_HEADER:
        raise ArchiveError(f"{name} is corrupt: entry header at byte {offset} claims {n} bytes")
    return _parse_header(_read_exact(fh, n, name, "an entry header"), name, offset)


def _open(path: Path) -> BinaryIO:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - the callers close it
    except OSError as exc:
        raise ArchiveError(f"cannot open {path.name}: {exc.strerror}") from exc
    if fh.read(len(MAGIC)) != MAGIC:
        fh.close()
        raise ArchiveError(f"{path.name} is not a fixture archive (no LSFX1 magic)")
    return fh


def read_entries(path: Path) -> list[Entry]:
    """All entries of one archive, skipping over the data (cheap, but checks every bound).

    :raises ArchiveError: when the archive is corrupt or truncated anywhere.
    """
    name = path.name
    with _open(path) as fh:
        total = os.fstat(fh.fileno()).st_size
        found: list[Entry] = []
        while (entry := _next_header(fh, name)) is not None:
            if fh.tell() + entry.size > total:
                raise ArchiveError(f"{name} is truncated: the data of {entry.path!r} is cut short")
            fh.seek(entry.size, os.SEEK_CUR)
            found.append(entry)
        return found


def iter_archive(path: Path, chunk: int = CHUNK) -> Iterator[tuple[Entry, Iterator[bytes]]]:
    """Read one archive front to back: each entry with an iterator over its data.

    The data iterator yields chunks of at most ``chunk`` bytes and raises
    :class:`ArchiveError` after the last one if the bytes fail the header's
    CRC32. Data left unread is skipped (unchecked) when the next entry is asked for.
    """
    name = path.name
    with _open(path) as fh:
        while (entry := _next_header(fh, name)) is not None:
            data_end = fh.tell() + entry.size
            yield entry, _data(fh, entry, name, chunk)
            fh.seek(data_end, os.SEEK_SET)


def _data(fh: BinaryIO, entry: Entry, name: str, chunk: int) -> Iterator[bytes]:
    left = entry.size
    crc = 0
    while left:
        block = fh.read(min(chunk, left))
        if not block:
            raise ArchiveError(f"{name} is truncated: the data of {entry.path!r} is cut short")
        crc = zlib.crc32(block, crc)
        left -= len(block)
        yield block
    if entry.crc32 is not None and crc != entry.crc32:
        raise ArchiveError(
            f"{name} is corrupt: {entry.path!r} has CRC32 {crc:08x}, its header says"
            f" {entry.crc32:08x}"
        )
