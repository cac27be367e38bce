"""The one rule for which archive entry names may be written to disk."""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from lanspread_core.errors import UnsafeEntryError

_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_relpath(name: str) -> PurePosixPath:
    """Return ``name`` as a relative POSIX path, or raise :class:`UnsafeEntryError`.

    Refused: empty names, absolute paths (``/x``, ``\\x``), drive letters
    (``C:``), any ``..`` component, NUL bytes. Backslashes count as separators
    because archives made on Windows use them.
    """
    if not name or "\x00" in name:
        raise UnsafeEntryError(f"archive entry {name!r} has an empty or invalid name")
    unified = name.replace("\\", "/")
    if unified.startswith("/"):
        raise UnsafeEntryError(f"archive entry {name!r} is an absolute path; refused")
    if _DRIVE.match(unified):
        raise UnsafeEntryError(f"archive entry {name!r} names a drive letter; refused")
    parts = [p for p in unified.split("/") if p not in ("", ".")]
    if not parts:
        raise UnsafeEntryError(f"archive entry {name!r} has an empty name")
    if ".." in parts:
        raise UnsafeEntryError(f"archive entry {name!r} climbs out with '..'; refused")
    return PurePosixPath(*parts)


def is_root_name(name: str) -> bool:
    """``.``, ``./`` and the like: an archive's entry for its own top folder."""
    return bool(name) and all(p in ("", ".") for p in name.replace("\\", "/").split("/"))
