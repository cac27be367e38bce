"""Folder contents as comparable values: state, compared exactly."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def tree(path: Path) -> dict[str, str]:
    """Every path under ``path`` with its kind and content hash."""
    out: dict[str, str] = {}
    if not path.exists():
        return out
    for dirpath, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(path).as_posix()
            if p.is_symlink():
                out[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                out[rel] = "dir"
            else:
                out[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def digest_tree(root: Path, exclude: tuple[str, ...] = ("local",)) -> dict[str, str]:
    """The hash of every file under ``root``, leaving out the top-level ``exclude`` folders."""
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.relative_to(root).parts[0] not in exclude
    }
