"""The libarchive archive provider: judge from headers, list, stream in one pass.

libarchive decompresses everything it can read in one forward pass, which is
exactly what a stream-install needs. What it cannot do is say, up front and
cheaply, whether it *will* manage (RAR3 solid fails at the second file, a
truncated RAR can look empty), nor give CRC32s; :mod:`lanspread_libarchive.sets`
answers those from the headers. The stream then checks that libarchive meets
the very entries the headers promised, in the same order, and emits those
checked entries, so what reaches the sink is always what was vetted.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

from libarchive.entry import ArchiveEntry

from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink, ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.errors import ArchiveError
from lanspread_libarchive.reader import open_reader
from lanspread_libarchive.sets import ArchiveSet, plan

_Loaded = list[tuple[ArchiveSet, tuple[Entry, ...]]]
_Fingerprint = tuple[tuple[str, int, int], ...]


def _kind(header: ArchiveEntry) -> EntryKind:
    # A tar hard link is a regular-file header with a link target: test it first.
    if header.islnk:
        return EntryKind.HARDLINK
    if header.issym:
        return EntryKind.SYMLINK
    if header.isdir:
        return EntryKind.DIR
    if header.isreg:
        return EntryKind.FILE
    return EntryKind.DEVICE


def _norm(name: str) -> str:
    return name.replace("\\", "/").rstrip("/")


def _is_root(name: str) -> bool:
    """``./`` in a tar made with ``tar -C dir .`` names the target itself."""
    return all(part in ("", ".") for part in name.replace("\\", "/").split("/"))


def _encrypted(label: str) -> ArchiveError:
    return ArchiveError(
        f"{label} is password-protected; Lanspread cannot install encrypted archives"
    )


def _header_entry(header: ArchiveEntry, label: str) -> Entry | None:
    """The entry a libarchive header describes, or ``None`` for the root folder."""
    name = header.pathname
    if name is None:
        raise ArchiveError(
            f"{label} has an entry name that cannot be decoded in this locale;"
            " run Lanspread with a UTF-8 locale"
        )
    kind = _kind(header)
    if kind is EntryKind.DIR and _is_root(name):
        return None
    if kind is not EntryKind.FILE:
        return Entry(name.rstrip("/"), kind, 0, None)
    if header.size is None:
        raise ArchiveError(f"{label} does not record the size of {name!r}")
    # libarchive does not expose the CRC32 that zip headers carry; it checks it itself.
    return Entry(name.rstrip("/"), kind, int(header.size), None)


def _list_other(archive_set: ArchiveSet) -> tuple[Entry, ...]:
    """A non-RAR archive's entries through libarchive, reading headers only."""
    found: list[Entry] = []
    with open_reader(archive_set.volumes, archive_set.label) as reader:
        for header in reader.headers():
            if reader.seen_encrypted:
                raise _encrypted(archive_set.label)
            entry = _header_entry(header, archive_set.label)
            if entry is not None:
                found.append(entry)
    return tuple(found)


def _fingerprint(archives: Sequence[Path]) -> _Fingerprint:
    try:
        stats = [(p, p.stat()) for p in archives]
    except OSError as exc:
        raise ArchiveError(f"cannot read {exc.filename}: {exc.strerror or exc}") from exc
    return tuple((str(p.resolve()), st.st_size, st.st_mtime_ns) for p, st in stats)


class LibarchiveProvider(ArchiveProvider):
    """Reads RAR5 (solid or not), non-solid RAR3, multi-volume RAR, zip, 7z, tar, ..."""

    def __init__(self) -> None:
        # unpack() lists, then stream() lists again: remember the last listing,
        # keyed by the archives' sizes and mtimes, so a tar.gz is not inflated twice.
        self._lock = threading.Lock()
        self._cache: tuple[_Fingerprint, _Loaded] | None = None

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        if not archives:
            return ProbeResult(ok=False, reason="there are no archives to read")
        try:
            sets = plan(archives)
        except ArchiveError as exc:
            return ProbeResult(ok=False, reason=str(exc))
        problems = list(dict.fromkeys(s.problem for s in sets if s.problem))
        return ProbeResult(
            ok=not problems,
            format=", ".join(dict.fromkeys(s.format for s in sets)) or "unknown",
            solid=any(s.solid for s in sets),
            multi_volume=any(s.multi_volume for s in sets),
            encrypted=any(s.encrypted for s in sets),
            reason="; ".join(problems),
            volumes=tuple(v.name for s in sets for v in s.volumes),
        )

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        return [entry for _, listed in self._load(archives) for entry in listed]

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        loaded = self._load(archives)
        for archive_set, expected in loaded:
            self._stream_set(archive_set, expected, sink)

    def _load(self, archives: Sequence[Path]) -> _Loaded:
        """Every set with its entries; raises the first reason a set cannot be read."""
        key = _fingerprint(archives)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
        loaded: _Loaded = []
        for archive_set in plan(archives):
            if archive_set.problem:
                raise ArchiveError(archive_set.problem)
            listed = archive_set.entries
            loaded.append((archive_set, listed if listed is not None else _list_other(archive_set)))
        with self._lock:
            self._cache = (key, loaded)
        return loaded

    @staticmethod
    def _stream_set(archive_set: ArchiveSet, expected: tuple[Entry, ...], sink: EntrySink) -> None:
        label = archive_set.label
        position = 0
        with open_reader(archive_set.volumes, label) as reader:
            for header in reader.headers():
                kind = _kind(header)
                name = header.pathname
                if kind is EntryKind.DIR and name is not None and _is_root(name):
                    continue
                if reader.seen_encrypted:
                    raise _encrypted(label)
                if position == len(expected):
                    raise ArchiveError(
                        f"{label} holds more entries than its headers list;"
                        " it changed or is damaged"
                    )
                entry = expected[position]
                position += 1
                # The name may be None when libarchive cannot convert it to the
                # locale; the kind and the order still have to agree.
                if kind is not entry.kind or (
                    name is not None and _norm(name) != _norm(entry.path)
                ):
                    raise ArchiveError(
                        f"{label} is damaged or changed: libarchive read {name!r}"
                        f" where the headers list {entry.path!r}"
                    )
                sink.begin(entry)
                if entry.kind is EntryKind.FILE:
                    for block in reader.blocks():
                        sink.write(block)
                sink.end(entry)
        if position != len(expected):
            raise ArchiveError(
                f"{label} ended after {position} of {len(expected)} entries;"
                " it is truncated or damaged"
            )
