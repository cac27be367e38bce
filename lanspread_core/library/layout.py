"""The disk rules of a games directory (DESIGN §3), in one place.

A game root is ``<games_dir>/<catalog id>/``. Its archives are the root-level
``*.eti`` files, read in sorted name order. ``version.ini`` at the root is the
download sentinel; ``local/`` being a directory is the install predicate.
"""

from __future__ import annotations

import os
import stat
from enum import StrEnum
from pathlib import Path, PurePosixPath

from lanspread_core.archive.entrypath import safe_relpath
from lanspread_core.errors import LanspreadError, UnsafeEntryError, UsageError

ARCHIVE_SUFFIX = ".eti"
SENTINEL = "version.ini"
SENTINEL_TMP = ".version.ini.tmp"
SENTINEL_DISCARDED = ".version.ini.discarded"
LOCAL = "local"
INSTALLING = ".local.installing"
BACKUP = ".local.backup"
OWNED_MARKER = ".lanspread_owned"
RESERVED = frozenset({LOCAL, INSTALLING, BACKUP, SENTINEL_TMP, SENTINEL_DISCARDED})
#: In the games dir, ``.pack-<id>.staging/`` is where ``lanspread pack`` builds a
#: root before renaming it into place; its name is never a game id (ids start
#: with a letter or digit), so a scan never takes it for a game.
PACK_STAGING_PREFIX = ".pack-"
PACK_STAGING_SUFFIX = ".staging"


def root_archives(root: Path) -> list[Path]:
    """The archives of a game root: regular root-level ``*.eti`` files, sorted by name."""
    return sorted(
        (
            p
            for p in root.iterdir()
            if p.suffix.lower() == ARCHIVE_SUFFIX and p.is_file() and not p.is_symlink()
        ),
        key=lambda p: p.name,
    )


def archives_for_path(path: Path) -> list[Path]:
    """What ``lanspread inspect PATH`` reads: a root's archives, or one archive file."""
    if path.is_dir():
        return root_archives(path)
    return [path]


class Availability(StrEnum):
    """How a game stands on this peer. Only READY is ever served."""

    READY = "ready"  # downloaded, catalog version, no operation active
    DOWNLOADING = "downloading"
    LOCAL_ONLY = "local_only"  # installed, not downloaded: "Installed, not shareable"
    BUSY = "busy"  # an install/update/uninstall/removal is running
    OUTDATED = "outdated"  # downloaded, but not the catalog version
    UNLISTED = "unlisted"  # not in the catalog
    ABSENT = "absent"  # neither downloaded nor installed


class BadGameId(UsageError):
    pass


def game_root(games_dir: Path, game_id: str) -> Path:
    """The root of ``game_id``: refuses anything but a direct child name."""
    if (
        not game_id
        or game_id in (".", "..")
        or "/" in game_id
        or "\\" in game_id
        or "\x00" in game_id
        or Path(game_id).is_absolute()
        or game_id in RESERVED
    ):
        raise BadGameId(f"{game_id!r} is not a game id (a folder name directly in the games dir)")
    return games_dir / game_id


def pack_staging(games_dir: Path, game_id: str) -> Path:
    """Where ``lanspread pack`` builds the root of ``game_id`` (see :data:`PACK_STAGING_PREFIX`)."""
    return games_dir / f"{PACK_STAGING_PREFIX}{game_id}{PACK_STAGING_SUFFIX}"


def is_pack_staging(name: str) -> bool:
    return name.startswith(PACK_STAGING_PREFIX) and name.endswith(PACK_STAGING_SUFFIX)


def is_downloaded(root: Path) -> bool:
    """Downloaded: ``version.ini`` is a regular file (not a link) at the root."""
    try:
        return stat.S_ISREG(os.lstat(root / SENTINEL).st_mode)
    except OSError:
        return False


def is_installed(root: Path) -> bool:
    """Installed: ``local`` is a real directory (not a link to one)."""
    try:
        return stat.S_ISDIR(os.lstat(root / LOCAL).st_mode)
    except OSError:
        return False


def availability(
    *,
    in_catalog: bool,
    downloaded: bool,
    installed: bool,
    version_matches: bool,
    busy: str | None,
) -> Availability:
    if busy == "download":
        return Availability.DOWNLOADING
    if busy:
        return Availability.BUSY
    if not in_catalog:
        return Availability.UNLISTED
    if downloaded:
        return Availability.READY if version_matches else Availability.OUTDATED
    return Availability.LOCAL_ONLY if installed else Availability.ABSENT


def is_reserved(name: str) -> bool:
    return name in RESERVED


class UnsafeDownloadPath(LanspreadError):
    """A path would leave the game root or names what is never part of a download."""


def download_path(path: str) -> PurePosixPath:
    """``path`` as a file a download may hold, or :class:`UnsafeDownloadPath`.

    The one rule for a manifest a peer sends, the files a downloader writes
    and the ranges a server sends: a canonical, relative, UTF-8 POSIX path
    with no ``..``, not under ``local/`` or a reserved name, and not the
    ``version.ini`` sentinel (which a downloader writes itself, last).
    """
    try:
        rel = safe_relpath(path)
    except UnsafeEntryError:
        raise UnsafeDownloadPath(
            f"the path {path!r} is absolute, empty or climbs out with '..'"
        ) from None
    if rel.as_posix() != path:
        raise UnsafeDownloadPath(f"the path {path!r} is not in canonical form")
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsafeDownloadPath(f"the path {path!r} is not valid UTF-8") from None
    if is_reserved(rel.parts[0]):
        raise UnsafeDownloadPath(f"{rel.parts[0]}/ and its contents are never served or downloaded")
    if path == SENTINEL:
        raise UnsafeDownloadPath(
            f"{SENTINEL} is never served or downloaded (a downloader writes its own)"
        )
    return rel


def download_files(root: Path) -> list[Path]:
    """Every regular file of the download: the root minus ``local/`` and reserved names.

    Symlinks are skipped (never hashed or served). Sorted by relative path.
    """
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == root:
            dirnames[:] = [d for d in dirnames if not is_reserved(d)]
            filenames = [f for f in filenames if not is_reserved(f)]
        dirnames[:] = [d for d in dirnames if not (here / d).is_symlink()]
        for name in filenames:
            path = here / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())
