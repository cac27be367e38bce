"""Crash safety of the local transactions, with real processes killed by SIGKILL."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from lanspread_core.errors import LanspreadError
from lanspread_core.install import intent
from lanspread_core.install.transactions import Transactions
from lanspread_core.library.layout import BACKUP, INSTALLING, OWNED_MARKER
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import load_registry
from lanspread_core.system.faults import ENV_FAULT, POINTS
from lanspread_fixture.gamesets import create_set
from support.cli import invoke, run_cli
from support.trees import tree

GAME = "aurora"
SIZE = 96 * 1024


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    games = tmp_path_factory.mktemp("template") / "games"
    games.mkdir()
    # the fixture format keeps these 24 kill-and-recover runs independent of the
    # RAR plugins; RAR installs are covered by tests/test_local_cli.py
    create_set(games, "alpha", size=SIZE, fmt="fixture")
    return games


def _setup(tmp_path: Path, template: Path, installed: bool) -> tuple[Path, StateDir]:
    games = tmp_path / "games"
    shutil.copytree(template, games)
    state = StateDir(tmp_path / "state").ensure()
    if installed:
        tx = Transactions(games, state, load_registry())
        tx.install(GAME)
        root = games / GAME
        (root / "local" / "saves").mkdir()
        (root / "local" / "saves" / "slot1.sav").write_bytes(b"my progress")
        # a game file the user edited: update gives back the archive's version
        edited = next(p for p in (root / "local").rglob("*") if p.is_file())
        edited.write_bytes(b"edited by the user")
    return games, state


def _run(op: str, games: Path, state: StateDir, fault: str | None) -> subprocess.CompletedProcess:
    env = {ENV_FAULT: fault} if fault else {}
    # the user's save and edited file are at stake: no terminal here to ask on
    yes = ["--yes"] if op in ("update", "uninstall") else []
    return run_cli(op, GAME, *yes, "--games-dir", games, "--state-dir", state.path, env=env)


PRE_INSTALLED = {"install": False, "update": True, "uninstall": True, "remove-download": False}
CASES = [(op, point) for op, points in POINTS.items() for point in points]


def test_every_fault_point_is_covered() -> None:
    assert len(CASES) == sum(len(p) for p in POINTS.values()) == 24


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, template: Path
) -> Callable[[str], tuple[dict[str, str], dict[str, str]]]:
    """Per operation, the games before it and after it ran to the end: computed once each."""
    trees: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    def old_and_new(op: str) -> tuple[dict[str, str], dict[str, str]]:
        if op not in trees:
            base = tmp_path_factory.mktemp(f"reference-{op}")
            games, state = _setup(base, template, PRE_INSTALLED[op])
            old = tree(games)
            done = _run(op, games, state, None)
            assert done.returncode == 0, done.stderr
            trees[op] = old, tree(games)
        return trees[op]

    return old_and_new


@pytest.mark.parametrize(("op", "point"), CASES)
def test_kill_at_every_step_leaves_old_or_new_state(
    tmp_path: Path,
    template: Path,
    reference: Callable[[str], tuple[dict[str, str], dict[str, str]]],
    op: str,
    point: str,
) -> None:
    # the old and the new state: the same operation, run to the end on a copy
    old, new = reference(op)
    games, state = _setup(tmp_path / "crash", template, PRE_INSTALLED[op])
    assert tree(games) == old  # the reference started where this run starts
    assert old != new
    crashed = _run(op, games, state, point)
    assert crashed.returncode == -9, f"fault {point} never fired: {crashed.stderr}"

    rec = run_cli("recover", "--games-dir", games, "--state-dir", state.path)
    assert rec.returncode == 0, rec.stderr
    after = tree(games)
    assert after in (old, new), f"after a crash at {point} the game is neither old nor new"
    assert not any(INSTALLING in k or BACKUP in k or OWNED_MARKER in k for k in after)
    assert intent.read(state, GAME) is None
    if op == "update":
        assert after[f"{GAME}/local/saves/slot1.sav"] == hashlib.sha256(b"my progress").hexdigest()


def test_recovery_leaves_unowned_reserved_folders_alone(tmp_path: Path, template: Path) -> None:
    games, state = _setup(tmp_path, template, installed=False)
    root = games / GAME
    for name in (INSTALLING, BACKUP):
        (root / name).mkdir()
        (root / name / "precious.txt").write_text("not ours")
    notes = Transactions(games, state, load_registry()).recover()
    assert (root / INSTALLING / "precious.txt").read_text() == "not ours"
    assert (root / BACKUP / "precious.txt").read_text() == "not ours"
    assert any("left" in n and "alone" in n for n in notes)


def test_recovery_removes_owned_leftover_staging(tmp_path: Path, template: Path) -> None:
    games, state = _setup(tmp_path, template, installed=False)
    staging = games / GAME / INSTALLING
    staging.mkdir()
    (staging / OWNED_MARKER).write_text("x")
    Transactions(games, state, load_registry()).recover()
    assert not staging.exists()


@pytest.mark.parametrize(
    ("game", "reason"),
    [
        ("a/b", "not a game id"),
        ("..", "not a game id"),
        ("/etc", "not a game id"),
        ("local", "not a game id"),
    ],
)
def test_remove_download_refuses_bad_ids(tmp_path: Path, template: Path, game: str, reason: str):
    games, state = _setup(tmp_path, template, installed=False)
    before = tree(games)
    proc = invoke("remove-download", game, "--games-dir", games, "--state-dir", state.path)
    assert proc.returncode == 2 and reason in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert tree(games) == before


def test_remove_download_refuses_symlinked_installed_busy_and_unsentinelled(
    tmp_path: Path, template: Path
) -> None:
    games, state = _setup(tmp_path, template, installed=True)
    tx = Transactions(games, state, load_registry())
    (games / "linked").symlink_to(games / "borealis")
    with pytest.raises(LanspreadError, match="symbolic link"):
        tx.remove_download("linked")
    with pytest.raises(LanspreadError, match="is installed"):
        tx.remove_download(GAME)
    (games / "borealis" / "version.ini").unlink()
    with pytest.raises(LanspreadError, match="not a complete download"):
        tx.remove_download("borealis")
    ops = OperationTable()
    busy = Transactions(games, state, load_registry(), ops=ops)
    ops.begin("borealis", "download")
    with pytest.raises(LanspreadError, match="busy with download"):
        busy.remove_download("borealis")
    assert (games / "borealis").is_dir() and (games / GAME / "local").is_dir()


def test_install_refused_when_installed_and_update_refused_when_not(
    tmp_path: Path, template: Path
) -> None:
    games, state = _setup(tmp_path, template, installed=True)
    tx = Transactions(games, state, load_registry())
    with pytest.raises(LanspreadError, match="already installed"):
        tx.install(GAME)
    with pytest.raises(LanspreadError, match="not installed"):
        tx.update("borealis")
