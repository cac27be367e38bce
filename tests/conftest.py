"""Shared test helpers: where the fixtures are and how to run the real CLI."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RAR_FIXTURES = ROOT.parent / "shared" / "fixtures" / "rar"
LANSPREAD = Path(sys.executable).with_name("lanspread")


def expected_rar() -> dict:
    return json.loads((RAR_FIXTURES / "EXPECTED.json").read_text())


def run_cli(
    *args: str | os.PathLike,
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``lanspread`` console script as a real process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    full_env.update(env or {})
    proc = subprocess.run(
        [str(LANSPREAD), *map(str, args)],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lanspread {args} failed ({proc.returncode}): {proc.stderr}")
    return proc


@pytest.fixture
def rar_fixtures() -> Path:
    return RAR_FIXTURES


def tree(path: Path) -> dict[str, str]:
    """Every path under ``path`` with its kind and content hash: state, compared exactly."""
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
