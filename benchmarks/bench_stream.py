"""Stream-install of a 1 GiB fixture game over loopback against the same
provider's local unpack of the same archives to disk, in the same run.

Target: stream-install rate / local unpack rate >= 0.80. Both write to the
same disk, so the comparison is fair without a ramdisk.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_core.library.layout import root_archives  # noqa: E402
from lanspread_core.plugin.registry import load_registry  # noqa: E402
from lanspread_core.plugin.selection import choose  # noqa: E402
from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.peerproc import PeerProc  # noqa: E402

GiB = 1 << 30
SCALE = float(os.environ.get("LANSPREAD_BENCH_GIB", "1"))
ARGS = ["--listen", "127.0.0.1:0", "--discovery", "static"]


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
        with ExitStack() as stack:
            a = stack.enter_context(
                PeerProc(work / "a", args=[*ARGS, "--provider", choice.name], catalog=catalog)
            )
            c = stack.enter_context(
                PeerProc(work / "c", args=[*ARGS, "--peer", a.control], catalog=catalog)
            )
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                games = {g["id"]: g for g in c.ok("list-games")["games"]}
                if games.get("aurora", {}).get("peers"):
                    break
                time.sleep(0.2)
            started = time.perf_counter()
            c.ok("stream-install", game_id="aurora", wait=True, timeout=1200)
            os.sync()
            streamed = size / (time.perf_counter() - started)
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
    ]
