"""The disk rules of a games directory (DESIGN §3), in one place.

A game root is ``<games_dir>/<catalog id>/``. Its archives are the root-level
``*.eti`` files, read in sorted name order. ``version.ini`` at the root is the
download sentinel; ``local/`` being a directory is the install predicate.
"""

from __future__ import annotations

from pathlib import Path

ARCHIVE_SUFFIX = ".eti"
SENTINEL = "version.ini"
SENTINEL_TMP = ".version.ini.tmp"
SENTINEL_DISCARDED = ".version.ini.discarded"
LOCAL = "local"
INSTALLING = ".local.installing"
BACKUP = ".local.backup"
OWNED_MARKER = ".lanspread_owned"
RESERVED = frozenset({LOCAL, INSTALLING, BACKUP, SENTINEL_TMP, SENTINEL_DISCARDED})


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
