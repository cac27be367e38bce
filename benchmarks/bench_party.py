"""Party catalog: from ``lanspread catalog publish`` to every peer holding the catalog.

One organizer (a ``lanspread peer`` with the fixture set ``alpha``) and N
guests started with no catalog, on loopback, pinging at the default 2 s.
Each round the organizer publishes the next seq through the real CLI; the
figure is the time from the start of that command to the last guest's
``catalog-changed`` event for that seq (so it includes the CLI's own
start-up, about 0.3-0.5 s). The first round also covers trust on first use.
A publish spreads by the organizer's pings (sent at once on a change) and
the guests' pings among themselves, so the figure should stay near one round
trip plus a fetch, whatever N; the target is the issue's "within a few
seconds".

``BENCH_PARTY_GUESTS`` (default 8) and ``BENCH_PARTY_ROUNDS`` (default 5).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.peerproc import PeerProc  # noqa: E402

GUESTS = int(os.environ.get("BENCH_PARTY_GUESTS", "8"))
ROUNDS = int(os.environ.get("BENCH_PARTY_ROUNDS", "5"))
#: loopback peers that find each other by the addresses they are given, default pings
LOOPBACK = ["--listen", "127.0.0.1:0", "--discovery", "static"]
TARGET_S = 3.0


def lanspread(*args: Any) -> str:
    script = Path(sys.executable).with_name("lanspread")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    out = subprocess.run(
        [str(script), *map(str, args)], capture_output=True, text=True, env=env, check=True
    )
    return out.stdout


def changed(peer: PeerProc, seq: int, since: int) -> None:
    peer.wait_event(
        lambda e: e["event"] == "catalog-changed" and e["party_seq"] == seq,
        timeout=60,
        since=since,
    )


def run() -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="bench-party-") as tmp, ExitStack() as stack:
        work = Path(tmp)
        catalog = work / "party.json"
        create_set(work / "org" / "games", "alpha", size=4096, catalog=catalog, fmt="fixture")
        key = work / "party.key"
        lanspread("party", "init", "--key", key)
        org = stack.enter_context(PeerProc(work / "org", args=LOOPBACK, catalog=catalog))
        guests = [
            stack.enter_context(PeerProc(work / f"g{i}", args=[*LOOPBACK, "--peer", org.control]))
            for i in range(GUESTS)
        ]
        org.ok("wait-peers", count=GUESTS, timeout_ms=60_000)
        times: list[float] = []
        for seq in range(1, ROUNDS + 1):
            data = json.loads(catalog.read_text())
            data["games"][0]["version"] = f"1.{seq}"  # something new each round
            catalog.write_text(json.dumps(data))
            marks = [g.mark() for g in guests]
            start = time.perf_counter()
            lanspread("catalog", "publish", "--catalog", catalog, "--key", key,
                      "--state-dir", work / "org" / "state")  # fmt: skip
            for guest, mark in zip(guests, marks, strict=True):
                changed(guest, seq, mark)
            times.append(time.perf_counter() - start)
    return [
        {
            "name": f"publish to {GUESTS} guests holding it, first use (seq 1)",
            "value": round(times[0], 3),
            "unit": "s",
            "target": TARGET_S,
        },
        {
            "name": f"publish to {GUESTS} guests holding it (median of seq 2-{ROUNDS})",
            "value": round(statistics.median(times[1:]), 3),
            "unit": "s",
            "target": TARGET_S,
        },
        {
            "name": f"publish to {GUESTS} guests holding it (worst of {ROUNDS})",
            "value": round(max(times), 3),
            "unit": "s",
        },
    ]
