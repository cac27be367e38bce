"""``FixtureProvider``: the archive provider for the fixture format.

Why it exists: a provider with no third-party dependency whose input tests
can forge byte by byte, so the core's provider contract (probe, entries, one
sequential stream pass, inherited unpack with undo on failure) is exercised
without unrar or libarchive. See :mod:`lanspread_fixture.fixtureformat`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lanspread_core.archive.protocol import Entry, EntryKind, EntrySink, ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_fixture.fixtureformat import CHUNK, is_fixture_archive, iter_archive, read_entries

FORMAT = "lanspread-fixture"


class FixtureProvider(ArchiveProvider):
    """Reads fixture archives; each archive of a set is read front to back once."""

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        """Accept the set only if every archive starts with the fixture magic.

        Only the first bytes are read, so probing a multi-GiB RAR set is
        instant; a file that cannot be opened is declined with its reason.
        """
        if not archives:
            return ProbeResult(ok=False, reason="there are no archives to read")
        for path in archives:
            try:
                ours = is_fixture_archive(path)
            except OSError as exc:
                return ProbeResult(ok=False, reason=f"cannot read {path.name}: {exc.strerror}")
            if not ours:
                return ProbeResult(ok=False, reason=f"{path.name} is not a fixture archive")
        return ProbeResult(ok=True, format=FORMAT, volumes=tuple(p.name for p in archives))

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        """Every entry of every archive, in list order; fails on any corrupt archive."""
        found: list[Entry] = []
        for path in archives:
            found.extend(read_entries(path))
        return found

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        """Feed all entries to ``sink`` in one pass, data in chunks of at most 1 MiB.

        Every archive's headers are read first (structure, truncation), so a
        damaged set fails before the sink sees a single byte; whether a name
        or a kind is safe to write is the core's business. A CRC mismatch,
        which only the data can reveal, raises
        :class:`~lanspread_core.errors.ArchiveError` before ``sink.end``.
        """
        self.entries(archives)
        for path in archives:
            for entry, data in iter_archive(path, CHUNK):
                sink.begin(entry)
                if entry.kind is EntryKind.FILE:
                    for block in data:
                        sink.write(block)
                sink.end(entry)
