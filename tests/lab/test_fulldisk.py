"""A full disk: real small tmpfs mounts (needs root, which CI has)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.trees import tree

pytestmark = pytest.mark.needs("tmpfs")

GAME = "aurora"


@contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=True)


def _install(games: Path, state: Path) -> subprocess.CompletedProcess:
    return run_cli("install", GAME, "--games-dir", games, "--state-dir", state)


def _one_clear_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]


def test_too_small_disk_is_refused_before_unpacking(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "disk", "size=24m") as disk:
        games = disk / "games"
        games.mkdir()
        create_set(games, "alpha", size=6 * 1024 * 1024, fmt="fixture")
        before = tree(games)
        line = _one_clear_line(_install(games, tmp_path / "state"))
        assert "not enough disk space to install aurora" in line
        assert tree(games) == before


def test_disk_filling_up_mid_unpack_rolls_back(tmp_path: Path) -> None:
    """Bytes fit but inodes run out part-way: the unpack fails and nothing is left."""
    staged = tmp_path / "staged"
    staged.mkdir()
    create_set(staged, "alpha", size=64 * 1024, fmt="fixture")
    used = 1 + sum(len(d) + len(f) for _, d, f in os.walk(staged))
    # room for the staging folder, its marker and two entries, not the whole game
    with tmpfs(tmp_path / "disk", f"size=64m,nr_inodes={used + 4}") as disk:
        games = disk / "games"
        shutil.copytree(staged, games)
        before = tree(games)
        line = _one_clear_line(_install(games, tmp_path / "state"))
        assert "No space left on device" in line
        assert tree(games) == before
