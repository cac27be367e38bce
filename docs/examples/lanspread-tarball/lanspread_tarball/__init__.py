"""A complete, minimal Lanspread archive provider: game archives that are tar files.

It is the worked example of ``docs/plugins.md``; the test suite installs it
and installs games with ``--provider tarball``. Tar carries no CRC32, so
entries report ``crc32=None`` and the core checks sizes only.
"""

from __future__ import annotations

import tarfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from lanspread_core import (
    ArchiveError,
    ArchiveProvider,
    Entry,
    EntryKind,
    EntrySink,
    ProbeResult,
    ProviderRecord,
    hookimpl,
)

BLOCK = 1 << 20


def _kind(member: tarfile.TarInfo) -> EntryKind:
    if member.isdir():
        return EntryKind.DIR
    if member.issym():
        return EntryKind.SYMLINK
    if member.islnk():
        return EntryKind.HARDLINK
    if member.isfile():
        return EntryKind.FILE
    return EntryKind.DEVICE


def _entry(member: tarfile.TarInfo) -> Entry:
    kind = _kind(member)
    return Entry(member.name, kind, member.size if kind is EntryKind.FILE else 0, None)


@contextmanager
def _reading(path: Path, mode: str) -> Iterator[tarfile.TarFile]:
    """Open ``path`` and turn every tar or I/O failure into one clear ArchiveError."""
    try:
        with tarfile.open(path, mode) as tf:
            yield tf
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise ArchiveError(f"{path.name} is not a readable tar archive: {exc}") from exc


class TarballProvider(ArchiveProvider):
    """Reads plain or compressed tar archives in one sequential pass."""

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        for path in archives:
            if not tarfile.is_tarfile(path):
                return ProbeResult(ok=False, reason=f"{path.name} is not a tar archive")
        return ProbeResult(ok=True, format="tar", volumes=tuple(p.name for p in archives))

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        found: list[Entry] = []
        for path in archives:
            with _reading(path, "r:*") as tf:
                found.extend(_entry(m) for m in tf)
        return found

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        for path in archives:
            # "r|*" reads the archive strictly front to back: one pass, no seeking.
            with _reading(path, "r|*") as tf:
                for member in tf:
                    entry = _entry(member)
                    sink.begin(entry)
                    if entry.kind is EntryKind.FILE:
                        src = tf.extractfile(member)
                        assert src is not None
                        while block := src.read(BLOCK):
                            sink.write(block)
                    sink.end(entry)


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="tarball",
            factory=TarballProvider,
            description="tar archives (.tar, .tar.gz, .tar.xz), the plugin-guide example",
            handles=("tar", "tar.gz", "tar.bz2", "tar.xz"),
        )
    ]
