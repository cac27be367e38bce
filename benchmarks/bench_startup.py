"""CLI start-up: ``lanspread --help`` and ``lanspread plugins`` against ``python -c pass``.

Every ``lanspread`` command and every test subprocess pays the start-up, so
it is measured as a whole process, the installed console script, exactly as a
user runs it. The baseline is the same interpreter doing nothing, run in the
same loop (runs interleaved, so a busy minute hits all three alike); the ratio
says how many bare interpreter start-ups one command costs.

``BENCH_STARTUP_RUNS`` sets the runs per command (median reported).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RUNS = int(os.environ.get("BENCH_STARTUP_RUNS", "15"))


def lanspread_script() -> str:
    """The console script beside this interpreter (the venv's), else the one on PATH."""
    beside = Path(sys.executable).parent / "lanspread"
    if beside.exists():
        return str(beside)
    found = shutil.which("lanspread")
    if found is None:
        raise SystemExit("bench_startup: the lanspread command is not installed (run make setup)")
    return found


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def run() -> list[dict]:
    script = lanspread_script()
    commands = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "lanspread --help": [script, "--help"],
        "lanspread plugins": [script, "plugins"],
    }
    for argv in commands.values():  # warm the page cache and the .pyc files
        timed(argv)
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(RUNS):
        for name, argv in commands.items():
            samples[name].append(timed(argv))
    medians = {name: statistics.median(values) for name, values in samples.items()}
    bare = medians["python -c pass"]
    rows = [{"name": f"python -c pass (median of {RUNS})", "value": bare, "unit": "s"}]
    for name in ("lanspread --help", "lanspread plugins"):
        rows.append(
            {
                "name": f"{name} (median of {RUNS})",
                "value": medians[name],
                "unit": "s",
                "baseline": bare,
            }
        )
    return rows
