"""An honest download from a victim peer under each attack of issue 15, against none.

On loopback: the victim serves ``aurora`` (the decoy the attackers ask for)
and ``borealis`` (the game an honest peer downloads). For each attack a fresh
victim starts, and honest peers download ``borealis`` from it: once to warm
up, then :data:`REPEATS` times without the attack and as many times while it
runs, interleaved, each redone over the files of the one before (its
``version.ini`` removed), because on these VMs landing bytes in fresh memory
costs more, and varies more, than anything measured here
(docs/benchmarks.md, "Loopback") (the same attacks as ``tests/integration/test_attacks.py``,
from their own loopback address, started anew for each download). The
medians are reported; the runs are in the JSON. Reported per attack: the
download rate under attack / without it in the same run, the victim's CPU
(process CPU seconds / wall seconds) during each download, and the
victim's peak RSS.

All processes share this machine's cores, attackers included, so a ratio
below 1 mixes what the victim lets the attacker take with what the attacking
client itself burns beside it.

The game size can be set with LANSPREAD_BENCH_ATTACK_MIB (default 512).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from statistics import median
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.attacks import (  # noqa: E402
    Attack,
    attacking,
    idle_connections_attack,
    slow_readers_attack,
    token_flood_attack,
    unfinished_frames_attack,
)
from support.peerproc import PeerProc  # noqa: E402

MiB = 1 << 20
SIZE = int(os.environ.get("LANSPREAD_BENCH_ATTACK_MIB", "512")) * MiB
GAME, DECOY = "borealis", "aurora"
LISTEN = ["--listen", "127.0.0.1:0", "--discovery", "static"]
NOFILE_1024 = ["prlimit", "--nofile=1024:1024"]
TICK = os.sysconf("SC_CLK_TCK")
#: downloads with and without the attack, interleaved; the medians count
REPEATS = 2


@dataclass
class Download:
    rate: float  # B/s, from the first grant to the last verified chunk
    victim_cpu: float  # victim CPU seconds / wall seconds during the download


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024 / 1e6
    return float("nan")


def download(work: Path, catalog: Path, victim: PeerProc) -> Download:
    """A fresh honest peer downloads the game from ``victim``, over the files
    of the download before when there was one."""
    (work / "games" / GAME / "version.ini").unlink(missing_ok=True)
    with PeerProc(work, args=[*LISTEN, "--peer", victim.control], catalog=catalog) as c:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            games = {g["id"]: g for g in c.ok("list-games")["games"]}
            if GAME in games and games[GAME]["peers"]:
                break
            time.sleep(0.2)
        cpu, wall = cpu_seconds(victim.proc.pid), time.monotonic()
        result = c.ok("download", game_id=GAME, install=False, wait=True, timeout=900)
        cpu, wall = cpu_seconds(victim.proc.pid) - cpu, time.monotonic() - wall
    return Download(result["bytes"] / result["transfer_seconds"], cpu / wall)


#: name, the attack built from (work folder, victim), victim command prefix
ATTACKS: list[tuple[str, Callable[[Path, PeerProc], Attack], list[str]]] = [
    (
        "64 slow readers",
        lambda work, v: slow_readers_attack(
            work / "rogue", v.control, int(v.ready["data_port"]), DECOY, v.games_dir / DECOY
        ),
        [],
    ),
    (
        "token flood",
        lambda work, v: token_flood_attack(work / "rogue", v.control, DECOY, v.games_dir / DECOY),
        [],
    ),
    (
        "1,100 idle connections (limit 1,024)",
        lambda work, v: idle_connections_attack(int(v.ready["data_port"])),
        NOFILE_1024,
    ),
    (
        "unfinished QUIC frames",
        lambda work, v: unfinished_frames_attack(work / "rogue", v.control),
        [],
    ),
]


def measure(
    work: Path, catalog: Path, build: Callable[[Path, PeerProc], Attack], prefix: list[str]
) -> dict[str, Any]:
    calm: list[Download] = []
    hit: list[Download] = []
    with ExitStack() as stack:
        victim = stack.enter_context(
            PeerProc(work / "victim", args=LISTEN, catalog=catalog, prefix=prefix)
        )
        download(work / "honest", catalog, victim)  # warm up: the files exist from here
        for _ in range(REPEATS):
            calm.append(download(work / "honest", catalog, victim))
            shutil.rmtree(work / "rogue", ignore_errors=True)
            with attacking(build(work, victim)):
                hit.append(download(work / "honest", catalog, victim))
        return {
            "calm": [d.rate for d in calm],
            "hit": [d.rate for d in hit],
            "cpu_calm": [d.victim_cpu for d in calm],
            "cpu_hit": [d.victim_cpu for d in hit],
            "rss": peak_rss_mb(victim.proc.pid),
        }


def run() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="lanspread-bench-attacks-") as tmp:
        base = Path(tmp)
        catalog = base / "catalog.json"
        create_set(base / "games", "alpha", catalog=catalog, size=SIZE)
        for name, build, prefix in ATTACKS:
            work = base / name.split()[0].strip(",")
            (work / "victim").mkdir(parents=True)
            shutil.copytree(base / "games", work / "victim" / "games")
            m = measure(work, catalog, build, prefix)
            shutil.rmtree(work, ignore_errors=True)
            rows += [
                {
                    "name": f"{name}: download under attack",
                    "value": median(m["hit"]) / 1e6,
                    "unit": "MB/s",
                    "baseline": median(m["calm"]) / 1e6,
                    "runs": [r / 1e6 for r in m["hit"]],
                    "baseline_runs": [r / 1e6 for r in m["calm"]],
                },
                {
                    "name": f"{name}: victim CPU without / with the attack",
                    "value": median(m["cpu_hit"]),
                    "unit": "CPU s/s",
                    "baseline": median(m["cpu_calm"]),
                    "runs": m["cpu_hit"],
                    "baseline_runs": m["cpu_calm"],
                },
                {
                    "name": f"{name}: victim peak RSS",
                    "value": m["rss"],
                    "unit": "MB",
                    "target": 200.0,
                },
            ]
    return rows
