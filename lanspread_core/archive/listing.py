"""Entry safety, owned by the core: a listing checked once, and a stream held to it.

Before a provider streams a byte, the core lists the archive set
(``provider.entries``) and checks every entry: a :class:`Listing` exists only
for entries whose names stay inside the target (:mod:`.entrypath`) and whose
kind is a file or a folder. While the provider streams, an :class:`Announced`
cursor holds it to that listing: each entry must be the next one announced
(same path, kind and size), no file may grow past its announced size, and the
pass must deliver every entry. A provider therefore cannot write, or send to
a peer, anything the core did not check first, even one that never checks a
name, lists one thing and streams another, or streams more than it listed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from lanspread_core.archive.entrypath import is_root_name, safe_relpath
from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink, StreamInstallProvider
from lanspread_core.errors import UnsafeEntryError, VerificationError

_WRITABLE = (EntryKind.FILE, EntryKind.DIR)


def is_root_entry(entry: Entry) -> bool:
    """An archive's entry for its own top folder (``./``): harmless, and written as nothing."""
    return entry.kind is EntryKind.DIR and is_root_name(entry.path)


def check_entry(entry: Entry) -> None:
    """Raise :class:`UnsafeEntryError` unless ``entry`` may be written."""
    if is_root_entry(entry):
        return
    if entry.kind not in _WRITABLE:
        raise UnsafeEntryError(
            f"archive entry {entry.path!r} is a {entry.kind}; links and devices are refused"
        )
    if entry.size < 0:
        raise UnsafeEntryError(f"archive entry {entry.path!r} has a negative size")
    safe_relpath(entry.path)


@dataclass(frozen=True)
class Listing:
    """The entries of an archive set, in archive order, every one of them checked.

    Building one is the check (:func:`check_entries`), so holding one is the
    proof: the tree writer and the stream sender take nothing else.
    """

    entries: tuple[Entry, ...]

    def __post_init__(self) -> None:
        for entry in self.entries:
            check_entry(entry)

    @property
    def total(self) -> int:
        """Bytes of all files: what an install needs on disk, before margins."""
        return sum(e.size for e in self.entries if e.kind is EntryKind.FILE)

    @property
    def files(self) -> int:
        return sum(1 for e in self.entries if e.kind is EntryKind.FILE)


def check_entries(entries: Iterable[Entry]) -> Listing:
    """The checked listing of ``entries``, or :class:`UnsafeEntryError` for the first bad one."""
    return Listing(tuple(entries))


class Announced:
    """Holds one sequential pass to a :class:`Listing` (one thread, one pass).

    Every method raises :class:`UnsafeEntryError` when the pass strays from
    the listing; after that, every later call raises the same error, so a
    provider that swallows the first one still gets nothing through.
    """

    def __init__(self, listing: Listing) -> None:
        self._pending = deque(e for e in listing.entries if not is_root_entry(e))
        self._current: Entry | None = None
        self._written = 0
        self._failed: UnsafeEntryError | None = None

    def begin(self, entry: Entry) -> Entry | None:
        """The announced entry that ``entry`` starts, or None for a root folder entry."""
        self._check()
        if is_root_entry(entry):
            return None
        if self._current is not None:
            self._fail(f"{entry.path!r} began before {self._current.path!r} ended")
        expected = self._pending.popleft() if self._pending else None
        if expected is None or (entry.path, entry.kind, entry.size) != (
            expected.path,
            expected.kind,
            expected.size,
        ):
            self._fail(f"archive entry {entry.path!r} ({entry.kind}) was not announced here")
        self._current = expected
        self._written = 0
        return expected

    def data(self, size: int) -> None:
        """Account for ``size`` bytes of the current file, before they are written."""
        self._check()
        current = self._current
        if current is None or current.kind is not EntryKind.FILE:
            self._fail("file data arrived outside a file")
        if self._written + size > current.size:
            self._fail(f"{current.path!r} is longer than the {current.size} bytes announced")
        self._written += size

    def end(self, entry: Entry) -> Entry | None:
        """The announced entry that ``entry`` ends (None for a root folder entry).

        :raises VerificationError: a file ended short of its announced size.
        """
        self._check()
        if is_root_entry(entry) and self._current is None:
            return None
        current = self._current
        if current is None or entry.path != current.path:
            self._fail(f"archive entry {entry.path!r} ended without beginning")
        self._current = None
        if current.kind is EntryKind.FILE and self._written != current.size:
            raise VerificationError(
                f"{current.path!r} unpacked to {self._written} bytes,"
                f" the archive says {current.size}"
            )
        return current

    def finish(self) -> None:
        """Raise unless the pass delivered every announced entry, and nothing else."""
        self._check()
        missing = self._current or (self._pending[0] if self._pending else None)
        if missing is not None:
            raise VerificationError(f"the archive ended before {missing.path!r} was complete")

    def _check(self) -> None:
        if self._failed is not None:
            raise self._failed

    def _fail(self, message: str) -> NoReturn:
        self._failed = UnsafeEntryError(message)
        raise self._failed


class AnnouncedSink:
    """An :class:`EntrySink` that passes on only what ``listing`` announced.

    For a sink that does not write to disk itself (the stream sender's
    socket); the tree writer keeps its own :class:`Announced`.
    """

    def __init__(self, inner: EntrySink, listing: Listing) -> None:
        self._inner = inner
        self._announced = Announced(listing)

    def begin(self, entry: Entry) -> None:
        announced = self._announced.begin(entry)
        if announced is not None:
            self._inner.begin(announced)

    def write(self, data: bytes | memoryview) -> None:
        self._announced.data(memoryview(data).nbytes)
        self._inner.write(data)

    def end(self, entry: Entry) -> None:
        announced = self._announced.end(entry)
        if announced is not None:
            self._inner.end(announced)

    def finish(self) -> None:
        self._announced.finish()


def stream_listed(
    provider: StreamInstallProvider,
    archives: Sequence[Path],
    sink: EntrySink,
    listing: Listing | None = None,
) -> Listing:
    """Stream ``archives`` into ``sink``, held to their checked listing; return it.

    ``listing`` is the one the caller already checked; without it the
    provider's listing is taken and checked first, before a byte is streamed.
    """
    if listing is None:
        listing = check_entries(provider.entries(archives))
    guarded = AnnouncedSink(sink, listing)
    provider.stream(archives, guarded)
    guarded.finish()
    return listing
