"""The ``lanspread`` command, run as a real process or in this one."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

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


@dataclass(frozen=True)
class CliResult:
    """What a ``lanspread`` run left behind, named like :class:`subprocess.CompletedProcess`."""

    returncode: int
    stdout: str
    stderr: str


def invoke(*args: str | os.PathLike[str], env: dict[str, str] | None = None) -> CliResult:
    """Run ``lanspread ARGS`` in this process through click's :class:`CliRunner`.

    For tests that only check a command's output and exit code: it skips the
    0.3-0.5 s a new interpreter spends on imports. The environment is the one
    :func:`run_cli` gives a process. An exception the command does not turn
    into an exit code propagates, so it fails the test with its traceback.
    """
    from lanspread_core.cli.main import main

    unset: dict[str, str | None] = {k: None for k in os.environ if k.startswith("LANSPREAD_")}
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    code: int | str | None = 0
    try:
        with CliRunner().isolation(env={**unset, **(env or {})}) as (out, err, _):
            try:
                main([os.fspath(a) for a in args])
            except SystemExit as exc:
                code = exc.code
                if isinstance(code, str):  # sys.exit("message"): printed, status 1
                    sys.stderr.write(code + "\n")
    finally:
        # a process would end here; in this one, the logging the command set up must go
        root.handlers[:] = handlers
        root.setLevel(level)
    return CliResult(
        code if isinstance(code, int) else (0 if code is None else 1),
        out.getvalue().decode(),
        err.getvalue().decode(),
    )
