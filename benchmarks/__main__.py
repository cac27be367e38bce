"""Run every ``benchmarks/bench_*.py`` (or the ones named), print one table, save JSON.

Results go to ``benchmarks/results/<name>.json`` (``name`` without ``bench_``).
The exit status is 1 when any row misses its target, so ``make bench`` fails.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import platform
import sys
import time
from pathlib import Path
from typing import Any

import benchmarks

RESULTS = Path(__file__).resolve().parent / "results"
COLUMNS = ("name", "value", "unit", "baseline", "ratio", "target", "pass")


def discover(selected: list[str]) -> list[str]:
    names = sorted(
        m.name[len("bench_") :]
        for m in pkgutil.iter_modules(benchmarks.__path__)
        if m.name.startswith("bench_")
    )
    unknown = [n for n in selected if n not in names]
    if unknown:
        sys.exit(f"unknown benchmark {', '.join(unknown)}; choose from: {', '.join(names)}")
    return [n for n in names if not selected or n in selected]


def complete(row: dict[str, Any]) -> dict[str, Any]:
    """Add ratio and pass to a row as the benchmark reported it."""
    value, baseline, target = row["value"], row.get("baseline"), row.get("target")
    higher = bool(row.get("higher_is_better", False))
    row.setdefault("baseline", None)
    row.setdefault("target", None)
    row["ratio"] = value / baseline if baseline else None
    row["pass"] = None if target is None else (value >= target if higher else value <= target)
    return row


def fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def print_table(rows: list[dict[str, Any]]) -> None:
    cells = [COLUMNS] + [tuple(fmt(r[c]) for c in COLUMNS) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    for n, line in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if i == 0 else c.rjust(w)
                for i, (c, w) in enumerate(zip(line, widths, strict=True))
            )
        )
        if n == 0:
            print("  ".join("-" * w for w in widths))


def main(argv: list[str]) -> int:
    all_rows: list[dict[str, Any]] = []
    RESULTS.mkdir(exist_ok=True)
    for name in discover(argv):
        print(f"running {name} ...", file=sys.stderr, flush=True)
        started = time.time()
        module = importlib.import_module(f"benchmarks.bench_{name}")
        rows = [complete(dict(row)) for row in module.run()]
        record = {
            "benchmark": name,
            "started": started,
            "seconds": round(time.time() - started, 3),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "rows": rows,
        }
        (RESULTS / f"{name}.json").write_text(json.dumps(record, indent=1) + "\n")
        all_rows.extend(rows)
    print_table(all_rows)
    return 1 if any(r["pass"] is False for r in all_rows) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
