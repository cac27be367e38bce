"""Whole-peer downloads against a raw sendfile baseline, in the LAN lab and on loopback.

* one source over a 1 Gbit tbf link, a 2 GiB game: download rate / raw TCP
  sendfile of the same bytes over the same link (target >= 0.95);
* three sources at 300 Mbit each to an unshaped receiver: aggregate / 900 Mbit
  (target >= 0.90);
* loopback, one source: download rate / raw sendfile on loopback (target >= 0.60);
* peak RSS of the downloading peer (target < 200 MB).

Needs root (network namespaces). Sizes can be lowered with LANSPREAD_BENCH_GIB.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanlab import LanLab  # noqa: E402
from lanspread_fixture.gamesets import create_set  # noqa: E402
from peerproc import PeerProc  # noqa: E402

GiB = 1 << 30
SCALE = float(os.environ.get("LANSPREAD_BENCH_GIB", "1"))
PY = sys.executable


def _archives(root: Path) -> list[str]:
    return [str(p) for p in sorted(root.glob("*.eti"))]


def raw_rate(lab: LanLab | None, src: int, dst: int, files: list[str], port: int = 9555) -> float:
    """Bytes/s of a bare sendfile transfer from host ``src`` to host ``dst``."""
    host = lab.hosts[src].addr if lab else "127.0.0.1"

    def argv(i: int, *args: str) -> list[str]:
        base = [PY, "-m", "benchmarks.rawsend", *args]
        return ["ip", "netns", "exec", lab.hosts[i].name, *base] if lab else base

    server = subprocess.Popen(
        argv(src, "serve", host, str(port), *files), cwd=ROOT, stdout=subprocess.PIPE
    )
    assert server.stdout is not None
    server.stdout.readline()
    out = subprocess.run(
        argv(dst, "recv", host, str(port)),
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    server.wait(60)
    result = json.loads(out.stdout)
    return result["bytes"] / result["seconds"]


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _peer(work: Path, catalog: Path, lab: LanLab | None, i: int, static: list[str]) -> PeerProc:
    listen = f"{lab.hosts[i].addr}:0" if lab else "127.0.0.1:0"
    prefix = ["ip", "netns", "exec", lab.hosts[i].name] if lab else []
    peers = [a for s in static for a in ("--peer", s)]
    return PeerProc(
        work / f"h{i}",
        args=["--listen", listen, "--discovery", "static", *peers],
        prefix=prefix,
        catalog=catalog,
    )


def download(receiver: PeerProc, game: str, sources: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        games = {g["id"]: g for g in receiver.ok("list-games")["games"]}
        if game in games and len(games[game]["peers"]) >= sources:
            break
        time.sleep(0.2)
    return receiver.ok("download", game_id=game, install=False, wait=True, timeout=1200)


def single_source(work: Path, rate: str | None, size: int) -> tuple[float, float, float, float]:
    """(transfer B/s, raw B/s, peak RSS MB, end-to-end B/s) for one source to one receiver.

    The transfer rate counts the byte-moving phase, like the raw baseline
    (which starts its clock after connecting); end to end adds asking every
    source for the manifest and sizing the files.
    """
    catalog = work / "catalog.json"
    create_set(work / "h0" / "games", "alpha", catalog=catalog, size=size)
    files = _archives(work / "h0" / "games" / "aurora")
    with ExitStack() as stack:
        lab = stack.enter_context(LanLab(n_hosts=2, rate=rate)) if rate else None
        raw = raw_rate(lab, 0, 1, files)
        a = stack.enter_context(_peer(work, catalog, lab, 0, []))
        c = stack.enter_context(_peer(work, catalog, lab, 1, [a.control]))
        result = download(c, "aurora", 1)
        rss = peak_rss_mb(c.proc.pid)
    return (
        result["bytes"] / result["transfer_seconds"],
        raw,
        rss,
        result["bytes"] / result["seconds"],
    )


def three_sources(work: Path, size: int) -> float:
    catalog = work / "catalog.json"
    for i in range(3):
        create_set(work / f"h{i}" / "games", "alpha", catalog=catalog, size=size)
    rates = {i: "300mbit" for i in range(3)}
    with LanLab(n_hosts=4, per_host_rate=rates) as lab, ExitStack() as stack:
        srcs = [stack.enter_context(_peer(work, catalog, lab, i, [])) for i in range(3)]
        c = stack.enter_context(_peer(work, catalog, lab, 3, [s.control for s in srcs]))
        result = download(c, "aurora", 3)
    return result["bytes"] / result["transfer_seconds"]


@contextmanager
def ramdisk() -> Iterator[str]:
    """A tmpfs work folder: the raw baseline never touches a disk, so neither may we.

    On these VMs the disk writes ~440 MB/s and is still flushing the freshly
    generated fixture games while the download runs; on tmpfs the comparison
    measures Lanspread against the network path, not against writeback.
    """
    path = tempfile.mkdtemp(prefix="lanspread-bench-dl-")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=12g", "tmpfs", path], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", path], check=True)
        os.rmdir(path)


def run() -> list[dict]:
    mb = 1e6
    rows: list[dict] = []
    with ramdisk() as tmp:
        work = Path(tmp)
        dl, raw, rss, e2e = single_source(work / "gbit", "1gbit", int(2 * GiB * SCALE))
        rows += [
            {"name": "1 source @1gbit tbf: raw sendfile", "value": raw / mb, "unit": "MB/s"},
            {
                "name": "1 source @1gbit tbf: download",
                "value": dl / mb,
                "unit": "MB/s",
                "baseline": raw / mb,
            },
            {
                "name": "1 source @1gbit: download / raw",
                "value": dl / raw,
                "unit": "ratio",
                "target": 0.95,
                "higher_is_better": True,
            },
            {
                "name": "peak RSS of the downloading peer",
                "value": rss,
                "unit": "MB",
                "target": 200.0,
            },
        ]
    with ramdisk() as tmp:
        agg = three_sources(Path(tmp), int(1 * GiB * SCALE))
        rows += [
            {
                "name": "3 sources @300mbit: aggregate",
                "value": agg / mb,
                "unit": "MB/s",
                "baseline": 900e6 / 8 / mb,
            },
            {
                "name": "3 sources @300mbit: aggregate / 900 Mbit",
                "value": agg / (900e6 / 8),
                "unit": "ratio",
                "target": 0.90,
                "higher_is_better": True,
            },
        ]
    with ramdisk() as tmp:
        dl, raw, _, e2e = single_source(Path(tmp), None, int(1 * GiB * SCALE))
        rows += [
            {"name": "loopback 1 source: raw sendfile", "value": raw / mb, "unit": "MB/s"},
            {
                "name": "loopback 1 source: download",
                "value": dl / mb,
                "unit": "MB/s",
                "baseline": raw / mb,
            },
            {
                "name": "loopback: download / raw",
                "value": dl / raw,
                "unit": "ratio",
                "target": 0.60,
                "higher_is_better": True,
            },
        ]
    return rows
