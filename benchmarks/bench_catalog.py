"""``lanspread catalog scan``: making and refreshing a catalog from a games dir.

* cold scan of 2,000 small roots (every game hashed and added) and a rescan
  where nothing changed, both as the installed command a user runs;
* the baseline: the same 2,000 entries saved one game at a time
  (``add_to_catalog`` per game, a full atomic rewrite each), which is what
  ``scan`` would cost if it saved after every game instead of every 10 s.

``BENCH_CATALOG_ROOTS`` shrinks the run for a quick look.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from lanspread_core.library.catalog import load_catalog
from lanspread_core.library.catalogfile import add_to_catalog

ROOTS = int(os.environ.get("BENCH_CATALOG_ROOTS", "2000"))


def make_roots(games: Path, count: int) -> None:
    for i in range(count):
        root = games / f"game{i:04d}"
        root.mkdir(parents=True)
        (root / "data.part1.eti").write_bytes(os.urandom(4096 + i % 512))
        (root / "data.part2.eti").write_bytes(os.urandom(2048))
        (root / "version.ini").write_text("1.0\n")


def scan(games: Path, tmp: Path) -> float:
    """One ``lanspread catalog scan GAMES`` as a process (no settings file), in seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    env["LANSPREAD_CONFIG"] = str(tmp / "no-settings.toml")
    script = Path(sys.executable).with_name("lanspread")
    start = time.perf_counter()
    subprocess.run(
        [str(script), "catalog", "scan", str(games)],
        check=True,
        stdout=subprocess.DEVNULL,
        env=env,
    )
    return time.perf_counter() - start


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="lanspread-bench-") as name:
        tmp = Path(name)
        games = tmp / "games"
        make_roots(games, ROOTS)
        cold = scan(games, tmp)
        rescan = scan(games, tmp)
        made = load_catalog(games / "catalog.json")
        assert len(made.games) == ROOTS, "the scan did not add every game"
        one_by_one = tmp / "one-by-one.json"
        start = time.perf_counter()
        for game in made.games.values():
            add_to_catalog(one_by_one, game)
        per_game = time.perf_counter() - start
        assert json.loads(one_by_one.read_bytes()) == json.loads(
            (games / "catalog.json").read_bytes()
        )
    return [
        {
            "name": f"catalog scan cold, {ROOTS} roots",
            "value": cold,
            "unit": "s",
            "baseline": per_game,
        },
        {"name": f"catalog scan unchanged, {ROOTS} roots", "value": rescan, "unit": "s"},
        {"name": f"saving after each game, {ROOTS} games", "value": per_game, "unit": "s"},
    ]
