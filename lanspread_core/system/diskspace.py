"""Refusing an unpack up front when the disk cannot hold it."""

from __future__ import annotations

import shutil
from pathlib import Path

from lanspread_core.errors import LanspreadError

#: Head-room on top of the reported unpacked size: file-system overhead
#: (blocks, directories) and whatever else writes to the disk meanwhile.
MARGIN_FIXED = 16 * 1024 * 1024
MARGIN_RATIO = 0.02


class NotEnoughSpace(LanspreadError):
    pass


def needed_with_margin(size: int) -> int:
    return size + MARGIN_FIXED + int(size * MARGIN_RATIO)


def human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def check_free_space(path: Path, size: int, what: str) -> None:
    """Raise :class:`NotEnoughSpace` unless ``path``'s disk has room for ``size`` bytes."""
    free = shutil.disk_usage(path).free
    need = needed_with_margin(size)
    if free < need:
        raise NotEnoughSpace(
            f"not enough disk space to {what}: it needs {human(need)} (with margin)"
            f" and {path} has {human(free)} free"
        )
