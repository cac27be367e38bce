"""Grouping an archive list into sets and judging each from its headers alone.

A probe must be cheap and must not lie: libarchive 3.6.2 reads RAR3 solid
archives only up to their first file, and on a truncated RAR it may report a
clean end with no entries at all. So RAR archives are judged from their own
headers, parsed in pure Python by ``rarfile`` (solid, volume and encryption
flags, CRC32s, missing volumes, truncation), and only other formats are judged
by libarchive, from their first header.
"""

from __future__ import annotations

import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import rarfile

from lanspread_core.archive.protocol import Entry, EntryKind
from lanspread_core.errors import ArchiveError
from lanspread_libarchive.reader import RAR_FAMILIES, ReadFailure, libarchive_version, open_reader

_RAR_LINKS = {
    rarfile.RAR5_XREDIR_UNIX_SYMLINK: EntryKind.SYMLINK,
    rarfile.RAR5_XREDIR_WINDOWS_SYMLINK: EntryKind.SYMLINK,
    rarfile.RAR5_XREDIR_WINDOWS_JUNCTION: EntryKind.SYMLINK,
    rarfile.RAR5_XREDIR_HARD_LINK: EntryKind.HARDLINK,
    # libarchive reports a RAR5 "file copy" as a hard link to the earlier file.
    rarfile.RAR5_XREDIR_FILE_COPY: EntryKind.HARDLINK,
}
_DEVICES = frozenset({stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK})


@dataclass(frozen=True)
class ArchiveSet:
    """One archive, or one multi-volume set, as its headers describe it.

    :param volumes: every file of the set, first volume first.
    :param problem: why this provider cannot read it, in words; empty if it can.
    :param entries: for RAR, the entries from the headers (libarchive's listing
        would decompress a solid archive just to skip it); ``None`` otherwise.
    :param continuation: a later volume met on its own; it belongs to a first
        volume that may come later in the list.
    """

    label: str
    volumes: tuple[Path, ...]
    format: str
    solid: bool = False
    encrypted: bool = False
    problem: str = ""
    entries: tuple[Entry, ...] | None = field(default=None, repr=False)
    continuation: bool = False

    @property
    def multi_volume(self) -> bool:
        return len(self.volumes) > 1


def _problem(path: Path, fmt: str, reason: str, **flags: bool) -> ArchiveSet:
    return ArchiveSet(path.name, (path,), fmt, problem=reason, **flags)


def rar_version(path: Path) -> str | None:
    """``"rar5"``/``"rar3"`` from the signature at offset 0, else ``None``."""
    try:
        version = rarfile.get_rar_version(str(path))
    except OSError as exc:
        raise ArchiveError(f"cannot read {path.name}: {exc.strerror or exc}") from exc
    return {rarfile.RAR_V5: "rar5", rarfile.RAR_V3: "rar3"}.get(version)


def _rar_kind(info: rarfile.RarInfo) -> EntryKind:
    if info.file_redir:
        return _RAR_LINKS.get(info.file_redir[0], EntryKind.HARDLINK)
    if info.is_symlink():
        return EntryKind.SYMLINK
    if info.is_dir():
        return EntryKind.DIR
    if info.host_os == rarfile.RAR_OS_UNIX and stat.S_IFMT(info.mode) in _DEVICES:
        return EntryKind.DEVICE
    return EntryKind.FILE


def _rar_entry(info: rarfile.RarInfo) -> Entry:
    kind = _rar_kind(info)
    if kind is not EntryKind.FILE:
        return Entry(info.filename.rstrip("/"), kind, 0, None)
    # A RAR5 archive made with BLAKE2 checksums has no CRC32 (info.CRC is None).
    return Entry(info.filename.rstrip("/"), kind, int(info.file_size), info.CRC)


def inspect_rar(path: Path, fmt: str) -> ArchiveSet:
    """Judge a RAR archive (and its later volumes) by parsing headers only."""
    try:
        rf = rarfile.RarFile(str(path))
    except rarfile.NeedFirstVolume:
        return ArchiveSet(
            path.name,
            (path,),
            fmt,
            problem=f"{path.name} is a later volume of a multi-volume RAR set whose"
            " first volume is not among the archives",
            continuation=True,
        )
    except rarfile.Error as exc:
        return _problem(path, fmt, f"{path.name} has damaged RAR headers ({exc})")
    except OSError as exc:
        raise ArchiveError(f"cannot read {path.name}: {exc.strerror or exc}") from exc

    volumes = tuple(Path(v) for v in rf.volumelist())
    infos = rf.infolist()
    solid = rf.is_solid() or any(i.flags & rarfile.RAR_FILE_SOLID for i in infos)
    encrypted = bool(rf.needs_password())
    problem = ""
    error = rf.strerror()
    if encrypted:
        problem = f"{path.name} is password-protected; Lanspread cannot install encrypted archives"
    elif error and error.startswith("Cannot open next volume"):
        missing = error.rpartition(":")[2].strip()
        problem = f"volume {Path(missing).name} of {path.name} is missing"
    elif error:
        problem = f"{path.name} is truncated or damaged ({error.rstrip('.')})"
    elif fmt == "rar3" and solid:
        problem = (
            f"{path.name} is a solid RAR3 archive, which libarchive {libarchive_version()}"
            " cannot read; install lanspread-unrar"
        )
    return ArchiveSet(
        label=path.name,
        volumes=volumes,
        format=fmt,
        solid=solid,
        encrypted=encrypted,
        problem=problem,
        entries=tuple(_rar_entry(i) for i in infos),
    )


def inspect_other(path: Path) -> ArchiveSet:
    """Judge a non-RAR archive by letting libarchive read its first header."""
    try:
        with open_reader([path], path.name) as reader:
            next(reader.headers(), None)
            fmt = reader.format
            encrypted = reader.seen_encrypted
    except ReadFailure as exc:
        if exc.detail.startswith("Unrecognized archive format"):
            why = f"{path.name} is not an archive libarchive can read ({exc.detail})"
        else:
            why = f"{path.name} is truncated or damaged ({exc.detail})"
        return _problem(path, "unknown", why)
    if fmt.split(".")[0] in RAR_FAMILIES:
        # A RAR not starting with its signature: self-extracting or damaged.
        return _problem(
            path,
            fmt,
            f"{path.name} is a self-extracting RAR archive, which this provider does not read",
        )
    if encrypted:
        return _problem(
            path,
            fmt,
            f"{path.name} is password-protected; Lanspread cannot install encrypted archives",
            encrypted=True,
        )
    return ArchiveSet(path.name, (path,), fmt)


def _key(path: Path) -> Path:
    return path.resolve()


def plan(archives: Sequence[Path]) -> list[ArchiveSet]:
    """The sets ``archives`` form, in list order.

    A later volume anywhere in the list is read as part of its first volume;
    one whose first volume is not in the list becomes a set with a problem.
    """
    sets: list[ArchiveSet] = []
    covered: set[Path] = set()
    later: list[ArchiveSet] = []
    for path in archives:
        if _key(path) in covered:
            continue
        fmt = rar_version(path)
        found = inspect_rar(path, fmt) if fmt else inspect_other(path)
        if found.continuation:
            later.append(found)
            continue
        covered.update(_key(v) for v in found.volumes)
        sets.append(found)
    sets.extend(s for s in later if _key(s.volumes[0]) not in covered)
    return sets
