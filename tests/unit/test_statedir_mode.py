"""The state directory holds the peer's key and control socket: it is owner-only."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from lanspread_core.library.statedir import StateDir

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX modes")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_directory_is_0700(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = StateDir(tmp_path / "new" / "state").ensure()
    finally:
        os.umask(old)
    assert mode(state.path) == 0o700


@pytest.mark.parametrize("wide", [0o755, 0o777, 0o750, 0o500])
def test_an_existing_state_directory_is_made_0700(wide: int, tmp_path: Path) -> None:
    path = tmp_path / "state"
    path.mkdir()
    path.chmod(wide)
    StateDir(path).ensure()
    assert mode(path) == 0o700
