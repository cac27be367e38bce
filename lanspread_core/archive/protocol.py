"""What an archive provider is: entries, probe results, sinks and the protocols.

A provider reads an *archive set*: the archive files of one game root (its
``*.eti`` in sorted name order) or one archive path given by the user (for a
multi-volume set, its first volume). Continuation volumes in the list are the
provider's business: it reads them as part of their first volume.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol, runtime_checkable


class EntryKind(StrEnum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    DEVICE = "device"


@dataclass(frozen=True)
class Entry:
    """One archive member as its headers describe it.

    :param path: the name in the archive, ``/``-separated as stored.
    :param kind: file, dir, or one of the kinds that are never written.
    :param size: unpacked size in bytes (0 for dirs and links).
    :param crc32: CRC32 of the unpacked bytes, or ``None`` where the archive
        has none (a zero-byte file, a dir, an archive using another hash).
    """

    path: str
    kind: EntryKind
    size: int
    crc32: int | None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "kind": str(self.kind),
            "size": self.size,
            "crc32": None if self.crc32 is None else f"{self.crc32:08x}",
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Entry:
        crc = data.get("crc32")
        return cls(
            path=str(data["path"]),
            kind=EntryKind(data["kind"]),
            size=int(data["size"]),
            crc32=None if crc is None else int(crc, 16),
        )


@dataclass(frozen=True)
class ProbeResult:
    """A provider's cheap verdict on an archive set (headers only, no unpacking).

    :param ok: the provider can unpack and stream every archive in the set.
    :param format: what was found, e.g. ``"rar5"``, ``"zip"``, ``"rar3, rar5"``.
    :param reason: when not ``ok``, why, as words a user understands.
    :param volumes: every file the set spans, first volumes and continuations.
    """

    ok: bool
    format: str = "unknown"
    solid: bool = False
    multi_volume: bool = False
    encrypted: bool = False
    reason: str = ""
    volumes: tuple[str, ...] = field(default_factory=tuple)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["volumes"] = list(self.volumes)
        return data


class EntrySink(Protocol):
    """Where a provider's one sequential pass goes, in archive order.

    For each entry the provider calls :meth:`begin`; for a file it then calls
    :meth:`write` zero or more times with the unpacked bytes, then
    :meth:`end`. A sink may block in :meth:`write` (it is bounded) and may
    raise :class:`~lanspread_core.errors.Cancelled` from any method, or
    :class:`~lanspread_core.errors.UnsafeEntryError` when the pass strays
    from the entries the provider listed; the provider must let that
    propagate and stop reading.
    """

    def begin(self, entry: Entry) -> None: ...

    def write(self, data: bytes | memoryview) -> None: ...

    def end(self, entry: Entry) -> None: ...


@runtime_checkable
class ArchiveReader(Protocol):
    """What every archive provider can do: look at an archive set cheaply."""

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        """Decide from headers whether this provider handles ``archives``."""
        ...

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        """All entries of all archives in archive order (sets in list order)."""
        ...


@runtime_checkable
class StreamInstallProvider(ArchiveReader, Protocol):
    """Produces the unpacked bytes of an archive set in one sequential pass."""

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        """Feed every entry, in archive order, into ``sink``.

        Runs in a worker thread. Raises :class:`~lanspread_core.errors.ArchiveError`
        for a corrupt, truncated or encrypted archive.
        """
        ...


@runtime_checkable
class Unpacker(ArchiveReader, Protocol):
    """Unpacks an archive set into a folder (the install step)."""

    def unpack(
        self, archives: Sequence[Path], dest: Path, sink_wrapper: SinkWrapper | None = None
    ) -> None:
        """Unpack ``archives`` into ``dest``, which must not exist or be empty.

        Nothing is written outside ``dest``; on failure ``dest`` is left as it
        was found. ``sink_wrapper`` lets the caller observe progress or cancel.
        Installs do not call this: they drive :meth:`StreamInstallProvider.stream`
        into the core's tree writer, which checks every entry.
        """
        ...


class SinkWrapper(Protocol):
    def __call__(self, sink: EntrySink) -> EntrySink: ...
