"""The suite's own rules, on a throw-away suite that a real pytest process runs.

A skip prints one line with its reason and the run passes; under ``CI=true``
the same skip fails the run and the skipped test is listed. (A run without
skips passing under ``CI=true`` is what CI itself shows.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.data import TESTS

SKIPS = "def test_runs():\n    pass\n" + (
    "\n\ndef test_skips():\n"
    "    import pytest\n\n"
    '    pytest.skip("cannot run here: run `make elsewhere`")\n'
)


def _run(tmp_path: Path, source: str, ci: bool) -> subprocess.CompletedProcess[str]:
    """pytest on one test module beside a copy of our conftest and helpers."""
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(TESTS / "conftest.py", suite / "conftest.py")
    (suite / "support").symlink_to(TESTS / "support", target_is_directory=True)
    (suite / "test_sample.py").write_text(source)
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci:
        env["CI"] = "true"
    return subprocess.run(
        # without hypothesis's plugin, whose import is most of pytest's start-up
        [
            sys.executable,
            "-m",
            "pytest",
            "-ra",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:hypothesispytest",
        ]
        + [str(suite)],
        cwd=suite,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_a_skip_is_one_line_with_its_reason_and_the_run_passes(tmp_path: Path) -> None:
    proc = _run(tmp_path, SKIPS, ci=False)
    assert proc.returncode == 0, proc.stdout
    (skipped,) = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skipped.startswith("SKIPPED [1] test_sample.py:")
    assert skipped.endswith(": cannot run here: run `make elsewhere`")
    assert "skipped under CI=true" not in proc.stdout


def test_under_ci_a_skip_fails_the_run_and_is_listed(tmp_path: Path) -> None:
    proc = _run(tmp_path, SKIPS, ci=True)
    assert proc.returncode == 1, proc.stdout
    assert "skipped under CI=true" in proc.stdout
    assert "  test_sample.py::test_skips: cannot run here: run `make elsewhere`" in proc.stdout
