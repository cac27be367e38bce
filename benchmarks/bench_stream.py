"""Stream-install of a 1 GiB fixture game over loopback against the same
provider's local unpack of the same archives to disk, in the same run.

Target: stream-install rate / local unpack rate >= 0.80. Both write to the
same disk, so the comparison is fair without a ramdisk.

A second receiver's catalog holds the game's per-file hashes, so it hashes
every file (BLAKE3) as it writes; the two receivers take turns, ``ROUNDS``
times each (each going first in turn), from one sender, and the best of each
counts. Target: with hashes / without >= 0.90. The receiving peer's CPU time
per GB is printed beside it (the least of each): steadier than a rate when
other work shares the machine.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_core.archive.filehashes import tree_hashes  # noqa: E402
from lanspread_core.library.layout import root_archives  # noqa: E402
from lanspread_core.plugin.registry import load_registry  # noqa: E402
from lanspread_core.plugin.selection import choose  # noqa: E402
from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.peerproc import PeerProc  # noqa: E402

GiB = 1 << 30
SCALE = float(os.environ.get("LANSPREAD_BENCH_GIB", "1"))
ARGS = ["--listen", "127.0.0.1:0", "--discovery", "static"]
ROUNDS = int(os.environ.get("LANSPREAD_BENCH_ROUNDS", "2"))


def with_file_hashes(catalog: Path, dest: Path, files: dict[str, str]) -> Path:
    """A copy of ``catalog`` at ``dest`` whose aurora lists ``files``."""
    data = json.loads(catalog.read_text())
    for game in data["games"]:
        if game["id"] == "aurora":
            game.setdefault("hashes", {})["files"] = files
    dest.write_text(json.dumps(data))
    return dest


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def stream_once(peer: PeerProc, size: int) -> tuple[float, float]:
    """One stream-install of aurora into ``peer``: its rate and the receiving
    peer's CPU seconds; then it is uninstalled."""
    os.sync()
    cpu = cpu_seconds(peer.proc.pid)
    started = time.perf_counter()
    peer.ok("stream-install", game_id="aurora", wait=True, timeout=1200)
    os.sync()
    rate = size / (time.perf_counter() - started)
    cpu = cpu_seconds(peer.proc.pid) - cpu
    peer.ok("uninstall", game_id="aurora", wait=True, timeout=600)
    return rate, cpu


def run() -> list[dict]:
    size = int(GiB * SCALE)
    with tempfile.TemporaryDirectory(prefix="lanspread-bench-stream-") as tmp:
        work = Path(tmp)
        catalog = work / "catalog.json"
        create_set(work / "a" / "games", "alpha", catalog=catalog, size=size)
        archives = root_archives(work / "a" / "games" / "aurora")
        choice = choose(load_registry(), "auto", archives)
        os.sync()
        started = time.perf_counter()
        choice.provider.unpack(archives, work / "unpacked")
        os.sync()
        local = size / (time.perf_counter() - started)
        shutil.rmtree(work / "unpacked")
        os.sync()
        hashed = with_file_hashes(
            catalog, work / "hashed.json", tree_hashes(choice.provider, archives)
        )
        with ExitStack() as stack:
            a = stack.enter_context(
                PeerProc(work / "a", args=[*ARGS, "--provider", choice.name], catalog=catalog)
            )
            receivers = [
                stack.enter_context(
                    PeerProc(work / name, args=[*ARGS, "--peer", a.control], catalog=cat)
                )
                for name, cat in (("c", catalog), ("d", hashed))
            ]
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                listed = [{g["id"]: g for g in r.ok("list-games")["games"]} for r in receivers]
                if all(games.get("aurora", {}).get("peers") for games in listed):
                    break
                time.sleep(0.2)
            rates: list[list[float]] = [[], []]
            cpus: list[list[float]] = [[], []]
            for round_ in range(ROUNDS):
                # each goes first in turn: neither gains from the other's warm caches
                for i in (0, 1) if round_ % 2 == 0 else (1, 0):
                    rate, cpu = stream_once(receivers[i], size)
                    rates[i].append(rate)
                    cpus[i].append(cpu)
            streamed, checked = max(rates[0]), max(rates[1])
            # CPU time is steadier than the rate on a shared machine: the least of each
            cpu_plain, cpu_checked = min(cpus[0]), min(cpus[1])
    mb = 1e6
    return [
        {
            "name": f"local unpack ({choice.name}), {size >> 20} MiB",
            "value": local / mb,
            "unit": "MB/s",
        },
        {
            "name": "stream-install over loopback",
            "value": streamed / mb,
            "unit": "MB/s",
            "baseline": local / mb,
        },
        {
            "name": "stream-install / local unpack",
            "value": streamed / local,
            "unit": "ratio",
            "target": 0.80,
            "higher_is_better": True,
        },
        {
            "name": "stream-install, catalog with per-file hashes",
            "value": checked / mb,
            "unit": "MB/s",
            "baseline": streamed / mb,
        },
        {
            "name": "with per-file hashes / without",
            "value": checked / streamed,
            "unit": "ratio",
            "target": 0.90,
            "higher_is_better": True,
        },
        {
            "name": "receiving peer's CPU per GB, with per-file hashes",
            "value": cpu_checked / (size / 1e9),
            "unit": "s",
            "baseline": cpu_plain / (size / 1e9),
        },
    ]
