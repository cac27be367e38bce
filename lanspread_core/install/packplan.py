"""What ``lanspread pack`` will write: the folder's items, checked, split into volumes.

The rules live here once, for every packer: only regular files and empty
folders travel (a link or a device is refused by name, never followed), every
name must be one a provider reads back unchanged, and volumes split on file
boundaries, so each archive is readable on its own and a file larger than the
split size has an archive to itself.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from lanspread_core.archive.listing import check_entry
from lanspread_core.archive.packer import PackItem
from lanspread_core.archive.protocol import Entry, EntryKind
from lanspread_core.errors import LanspreadError, UnsafeEntryError, UsageError
from lanspread_core.library.layout import ARCHIVE_SUFFIX

#: Default volume size: 4 GB, under FAT32's file limit, a few per big game.
DEFAULT_SPLIT_SIZE = 4_000_000_000
#: What a stored zip adds per entry at most (local and central headers, zip64
#: extras), besides twice the name: for the free-space check.
ENTRY_OVERHEAD = 160
#: How many offending names an error quotes.
_NAMED = 5


class PackRefused(UsageError):
    """The folder holds something pack does not store; the message names it."""


@dataclass(frozen=True)
class PackPlan:
    """Every item of a folder in archive order, and the volumes they fall into."""

    source: Path
    volumes: tuple[tuple[PackItem, ...], ...]

    @property
    def items(self) -> tuple[PackItem, ...]:
        return tuple(item for volume in self.volumes for item in volume)

    @property
    def total(self) -> int:
        """Bytes of all files."""
        return sum(item.size for item in self.items)

    @property
    def files(self) -> int:
        return sum(1 for item in self.items if item.kind is EntryKind.FILE)

    @property
    def needed(self) -> int:
        """Bytes the archives take at most, before the free-space margin."""
        return sum(item.size + ENTRY_OVERHEAD + 2 * len(item.path.encode()) for item in self.items)


def archive_names(game_id: str, count: int) -> list[str]:
    """``<id>.eti`` for one volume; ``<id>.part001.eti`` ... for several, in sorted order."""
    if count == 1:
        return [f"{game_id}{ARCHIVE_SUFFIX}"]
    width = max(3, len(str(count)))
    return [f"{game_id}.part{n:0{width}d}{ARCHIVE_SUFFIX}" for n in range(1, count + 1)]


def _quoted(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names[:_NAMED])
    more = len(names) - _NAMED
    return shown + (f" and {more} more" if more > 0 else "")


def _archive_name(rel: str) -> str:
    """``rel`` if a provider reads it back unchanged, else :class:`PackRefused`."""
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        raise PackRefused(
            f"the name {rel!r} is not valid UTF-8, so an archive cannot hold it;"
            " rename it and pack again"
        ) from None
    if "\\" in rel:
        raise PackRefused(
            f"the name {rel!r} holds a backslash, which archives read as a folder separator;"
            " rename it and pack again"
        )
    try:
        check_entry(Entry(rel, EntryKind.FILE, 0, None))
    except UnsafeEntryError as exc:
        raise PackRefused(f"{exc}; rename it and pack again") from None
    return rel


def _walk(source: Path) -> tuple[list[PackItem], list[str], list[str]]:
    """Files and empty folders under ``source``; also the links and the other odd entries."""
    items: list[PackItem] = []
    links: list[str] = []
    odd: list[str] = []

    def visit(folder: Path, prefix: str) -> None:
        try:
            with os.scandir(folder) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            raise LanspreadError(f"cannot read {folder}: {exc.strerror or exc}") from exc
        if not children and prefix:
            items.append(PackItem(_archive_name(prefix.rstrip("/")), EntryKind.DIR, 0, folder))
        for child in children:
            rel = prefix + child.name
            try:
                st = child.stat(follow_symlinks=False)
            except OSError as exc:
                raise LanspreadError(f"cannot read {child.path}: {exc.strerror or exc}") from exc
            if stat.S_ISLNK(st.st_mode):
                links.append(rel)
            elif stat.S_ISDIR(st.st_mode):
                visit(Path(child.path), rel + "/")
            elif stat.S_ISREG(st.st_mode):
                items.append(
                    PackItem(_archive_name(rel), EntryKind.FILE, st.st_size, Path(child.path))
                )
            else:
                odd.append(rel)

    visit(source, "")
    return items, links, odd


def split(items: list[PackItem], split_size: int) -> list[list[PackItem]]:
    """Volumes of at most ``split_size`` file bytes, cut between files, in order.

    A file larger than ``split_size`` fills a volume alone. Empty folders
    cost nothing and stay where they fall.
    """
    volumes: list[list[PackItem]] = [[]]
    filled = 0
    for item in items:
        if volumes[-1] and filled + item.size > split_size and item.size:
            volumes.append([])
            filled = 0
        volumes[-1].append(item)
        filled += item.size
    return volumes


def plan_pack(
    source: Path, split_size: int = DEFAULT_SPLIT_SIZE, check: Callable[[], None] = lambda: None
) -> PackPlan:
    """Walk ``source`` (blocking) and plan its volumes, or refuse in one sentence."""
    if split_size <= 0:
        raise UsageError("the split size must be more than 0 bytes")
    if not source.is_dir():
        raise UsageError(f"{source} is not a folder; pack takes the folder a game is installed in")
    items, links, odd = _walk(source)
    check()
    if links:
        raise PackRefused(
            f"{source} holds {len(links)} symbolic link(s), which pack does not store:"
            f" {_quoted(links)}; replace each with a copy of what it points to, or remove it"
        )
    if odd:
        raise PackRefused(
            f"{source} holds {len(odd)} entries that are neither files nor folders"
            f" (devices, sockets or pipes): {_quoted(odd)}; remove them and pack again"
        )
    if not any(item.kind is EntryKind.FILE for item in items):
        raise PackRefused(f"{source} holds no files; there is nothing to pack")
    return PackPlan(source, tuple(tuple(v) for v in split(items, split_size)))
