"""The ``lanspread`` command, run as a real process or in this one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

#: the console script of the virtualenv running the tests
LANSPREAD = Path(sys.executable).with_name("lanspread")


def _clean_env(env: dict[str, str] | None) -> dict[str, str]:
    """The test's own environment without ``LANSPREAD_*`` settings, plus ``env``."""
    full = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    full.update(env or {})
    return full


def run_cli(
    *args: str | os.PathLike[str],
    env: dict[str, str] | None = None,
    check: bool = False,
    timeout: float = 120,
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``lanspread`` console script as a real process."""
    proc = subprocess.run(
        [str(LANSPREAD), *map(str, args)],
        capture_output=True,
        text=True,
        env=_clean_env(env),
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"lanspread {args} failed ({proc.returncode}): {proc.stderr}")
    return proc
