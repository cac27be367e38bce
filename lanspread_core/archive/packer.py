"""What a packer is: it writes one archive from a list of items the core checked.

``lanspread pack`` walks the folder, refuses what cannot travel (links,
devices, names a provider would refuse), splits the items into volumes on
file boundaries and names the archives; a packer only writes one archive at a
time. So every rule lives in the core, and a plugin that adds a format has
one method to write.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

from lanspread_core.archive.protocol import EntryKind


@dataclass(frozen=True)
class PackItem:
    """One entry to write into an archive.

    :param path: its name in the archive, ``/``-separated, relative, checked
        by the core (no ``..``, no backslash, valid UTF-8).
    :param kind: :attr:`EntryKind.FILE`, or :attr:`EntryKind.DIR` for an empty folder
        (a folder that holds something is implied by its contents).
    :param size: a file's size in bytes when the core planned the pack; 0 for a folder.
    :param source: where the file is on disk (the folder itself for a folder).
    """

    path: str
    kind: EntryKind
    size: int
    source: Path


@runtime_checkable
class Packer(Protocol):
    """Writes archives that an installed provider reads (``lanspread pack``)."""

    def write(
        self, items: Sequence[PackItem], target: Path, progress: Callable[[int], None]
    ) -> None:
        """Write one archive at ``target`` (a new file) holding ``items`` in order.

        Blocking; the caller may run it in a worker thread. Call ``progress(n)``
        after each block of ``n`` file bytes read; it raises
        :class:`~lanspread_core.errors.Cancelled` to stop, which must propagate.
        A file whose size is no longer ``item.size`` is an
        :class:`~lanspread_core.errors.ArchiveError`. The caller removes
        ``target`` when this raises, and checks afterwards, through the
        installed providers, that the archive lists exactly ``items``.
        """
        ...
