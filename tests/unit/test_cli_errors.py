"""A bug inside a command reaches the user as one sentence; its traceback goes to the log.

The bug is planted (a provider method that raises a plain ``RuntimeError``):
no real code path is known to raise one, and the handler must hold for the
next one nobody knows about yet.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from lanspread_core.cli.common import INTERNAL_ERROR_EXIT
from lanspread_core.library.layout import INSTALLING
from lanspread_core.library.statedir import StateDir
from lanspread_fixture.gamesets import create_set
from lanspread_fixture.provider import FixtureProvider
from support.cli import invoke


def _bug(*_args: object) -> None:
    raise RuntimeError("a planted bug\nover two lines")


def _one_sentence(stderr: str, state: StateDir) -> None:
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("lanspread: internal error: RuntimeError: a planted bug over two")
    assert f"the details are in {state.log_file}" in stderr
    assert "Traceback" not in stderr


def test_inspect_bug_is_one_line_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    games = tmp_path / "games"
    create_set(games, "alpha", fmt="fixture")
    monkeypatch.setattr(FixtureProvider, "entries", _bug)
    state = StateDir(tmp_path / "state")  # no --state-dir on inspect: the environment's
    proc = invoke(
        "inspect",
        games / "aurora",
        "--provider",
        "fixture",
        env={"LANSPREAD_STATE_DIR": str(state.path)},
    )
    assert proc.returncode == INTERNAL_ERROR_EXIT
    _one_sentence(proc.stderr, state)
    log = state.log_file.read_text()
    assert "ERROR lanspread_core.cli: internal error in 'lanspread inspect" in log
    assert "Traceback (most recent call last)" in log and "RuntimeError: a planted bug" in log
    # and 'lanspread logs' shows it
    assert "RuntimeError: a planted bug" in invoke("logs", "--state-dir", state.path).stdout


def test_install_bug_is_one_line_logged_and_rolled_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    games = tmp_path / "games"
    create_set(games, "alpha", fmt="fixture")
    monkeypatch.setattr(FixtureProvider, "stream", _bug)
    state = StateDir(tmp_path / "state")
    proc = invoke(
        "install",
        "aurora",
        "--provider",
        "fixture",
        "--games-dir",
        games,
        "--state-dir",
        state.path,
    )
    assert proc.returncode == INTERNAL_ERROR_EXIT
    _one_sentence(proc.stderr, state)
    assert "Traceback (most recent call last)" in state.log_file.read_text()
    root = games / "aurora"
    assert not (root / "local").exists() and not (root / INSTALLING).exists()
