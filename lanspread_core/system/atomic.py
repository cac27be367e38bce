"""Crash-safe small writes: temp file, fsync, rename, fsync the folder."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from lanspread_core.system.portable import fsync_dir


def write_atomic(path: Path, data: bytes, tmp_name: str | None = None) -> None:
    """Replace ``path`` with ``data`` so a crash leaves the old or the new bytes."""
    tmp = path.with_name(tmp_name or f".{path.name}.tmp")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json.dumps(data, indent=1, sort_keys=True).encode())
