"""Whole-peer downloads against a raw sendfile baseline, in the LAN lab and on loopback.

* one source over a 1 Gbit tbf link, a 2 GiB game: download rate / raw TCP
  sendfile of the same bytes over the same link (target >= 0.95);
* three sources at 300 Mbit each to an unshaped receiver, the same 2 GiB
  game: aggregate / 900 Mbit (target >= 0.90), the median of three runs;
* loopback, one source, 1 GiB: download rate / raw sendfile on loopback
  (target >= 0.60), the median of three interleaved pairs, taken with the
  receiver's files already in memory (the download redone over an
  interrupted one), because raw sendfile throws its bytes away. On these VMs
  a page of memory touched for the first time costs so much that landing
  1 GiB anywhere runs at 0.25-3 GB/s, often below the loopback rate itself;
  the first download into new files, and raw sendfile writing to a new
  file, are reported beside it (docs/benchmarks.md);
* peak RSS of the downloading peer (target < 200 MB).

Needs root (network namespaces). Sizes can be lowered with LANSPREAD_BENCH_GIB.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.lanlab import LanLab  # noqa: E402
from support.peerproc import PeerProc  # noqa: E402

GiB = 1 << 30
SCALE = float(os.environ.get("LANSPREAD_BENCH_GIB", "1"))
#: runs of the noisy figures (three sources, loopback in memory); the median counts
REPEATS = 3
PY = sys.executable


def _archives(root: Path) -> list[str]:
    return [str(p) for p in sorted(root.glob("*.eti"))]


def raw_rate(
    lab: LanLab | None,
    src: int,
    dst: int,
    files: list[str],
    port: int = 9555,
    into: Path | None = None,
) -> float:
    """Bytes/s of a bare sendfile transfer from host ``src`` to host ``dst``,
    thrown away on arrival or, with ``into``, written to that file."""
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
        argv(dst, "recv", host, str(port), *([str(into)] if into else [])),
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


def hashed(source: PeerProc, timeout: float = 120) -> PeerProc:
    """Wait until ``source`` has built the manifest of every game it holds.

    On the LAN each peer hashes its library on its own CPU; here the peers
    share two cores, and a source still hashing its other games would take
    them from the transfer being measured.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        games = source.ok("list-games")["games"]
        if all(g["manifest_hash"] for g in games if g["downloaded"]):
            return source
        time.sleep(0.2)
    raise TimeoutError(f"{source.workdir.name} did not finish hashing its games")


def download(receiver: PeerProc, game: str, sources: int) -> dict[str, Any]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        games = {g["id"]: g for g in receiver.ok("list-games")["games"]}
        if game in games and len(games[game]["peers"]) >= sources:
            break
        time.sleep(0.2)
    return receiver.ok("download", game_id=game, install=False, wait=True, timeout=1200)


def redownload(
    work: Path, catalog: Path, lab: LanLab | None, host: int, static: list[str], sources: int
) -> dict[str, Any]:
    """The download redone over the files of an interrupted one: ``version.ini``
    removed, a fresh receiver process; the files' pages are already in memory."""
    (work / f"h{host}" / "games" / "aurora" / "version.ini").unlink()
    with _peer(work, catalog, lab, host, static) as c:
        return download(c, "aurora", sources)


def transfer_rate(result: dict[str, Any]) -> float:
    """B/s of the byte-moving phase (from the first grant to the last verified
    chunk), which is what the raw baseline's clock covers too."""
    return result["bytes"] / result["transfer_seconds"]


@dataclass
class SingleSource:
    transfer: float  # B/s of the first download, into new files
    end_to_end: float  # the same, including manifests from every source and sizing the files
    raw: float  # B/s of bare sendfile, bytes thrown away on arrival
    rss_mb: float  # peak RSS of the downloading peer
    raw_landed: float | None = None  # B/s of bare sendfile written to a new file
    #: (raw B/s, download B/s) pairs, the download redone over its files in memory
    again: list[tuple[float, float]] = field(default_factory=list)


def single_source(work: Path, rate: str | None, size: int, *, memory: bool) -> SingleSource:
    """One source to one receiver, against raw sendfile over the same path.

    With ``memory``, also separate what landing bytes in fresh memory costs:
    raw sendfile writing what it receives to a new file (before and after the
    first download; the cost drifts within a run, the mean brackets the
    download), then :data:`REPEATS` interleaved pairs of raw sendfile and the
    download redone over its own files, whose pages are already in memory.
    """
    catalog = work / "catalog.json"
    create_set(work / "h0" / "games", "alpha", catalog=catalog, size=size)
    files = _archives(work / "h0" / "games" / "aurora")
    landing = work / "raw-landed"
    landing.mkdir()
    with ExitStack() as stack:
        lab = stack.enter_context(LanLab(n_hosts=2, rate=rate)) if rate else None
        raw = raw_rate(lab, 0, 1, files)
        landed = [raw_rate(lab, 0, 1, files, into=landing / "before")] if memory else []
        a = hashed(stack.enter_context(_peer(work, catalog, lab, 0, [])))
        with _peer(work, catalog, lab, 1, [a.control]) as c:
            result = download(c, "aurora", 1)
            rss = peak_rss_mb(c.proc.pid)
        out = SingleSource(transfer_rate(result), result["bytes"] / result["seconds"], raw, rss)
        if memory:
            landed.append(raw_rate(lab, 0, 1, files, into=landing / "after"))
            out.raw_landed = statistics.fmean(landed)
            for _ in range(REPEATS):
                raw_again = raw_rate(lab, 0, 1, files)
                again = redownload(work, catalog, lab, 1, [a.control], 1)
                out.again.append((raw_again, transfer_rate(again)))
    return out


def three_sources(work: Path, size: int) -> list[float]:
    """Aggregate B/s of :data:`REPEATS` downloads from three sources (the first
    into new files, the others redone over them; the links are the limit)."""
    catalog = work / "catalog.json"
    create_set(work / "h0" / "games", "alpha", catalog=catalog, size=size)
    for i in (1, 2):  # the same bytes on every source: hard links, not three copies in RAM
        (work / f"h{i}").mkdir()
        subprocess.run(["cp", "-al", str(work / "h0" / "games"), str(work / f"h{i}")], check=True)
    rates = {i: "300mbit" for i in range(3)}
    with LanLab(n_hosts=4, per_host_rate=rates) as lab, ExitStack() as stack:
        srcs = [stack.enter_context(_peer(work, catalog, lab, i, [])) for i in range(3)]
        for src in srcs:
            hashed(src)
        static = [s.control for s in srcs]
        with _peer(work, catalog, lab, 3, static) as c:
            runs = [transfer_rate(download(c, "aurora", 3))]
        for _ in range(REPEATS - 1):
            runs.append(transfer_rate(redownload(work, catalog, lab, 3, static, 3)))
    return runs


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
        one = single_source(Path(tmp), "1gbit", int(2 * GiB * SCALE), memory=False)
        rows += [
            {"name": "1 source @1gbit tbf: raw sendfile", "value": one.raw / mb, "unit": "MB/s"},
            {
                "name": "1 source @1gbit tbf: download",
                "value": one.transfer / mb,
                "unit": "MB/s",
                "baseline": one.raw / mb,
            },
            {
                "name": "1 source @1gbit: download / raw",
                "value": one.transfer / one.raw,
                "unit": "ratio",
                "target": 0.95,
                "higher_is_better": True,
            },
            {
                "name": "1 source @1gbit: end to end / raw",
                "value": one.end_to_end / one.raw,
                "unit": "ratio",
            },
            {
                "name": "peak RSS of the downloading peer",
                "value": one.rss_mb,
                "unit": "MB",
                "target": 200.0,
            },
        ]
    with ramdisk() as tmp:
        runs = three_sources(Path(tmp), int(2 * GiB * SCALE))
        line = 900e6 / 8
        rows += [
            {
                "name": "3 sources @300mbit: aggregate",
                "value": statistics.median(runs) / mb,
                "unit": "MB/s",
                "baseline": line / mb,
                "runs": [r / mb for r in runs],
            },
            {
                "name": "3 sources @300mbit: aggregate / 900 Mbit",
                "value": statistics.median(runs) / line,
                "unit": "ratio",
                "target": 0.90,
                "higher_is_better": True,
                "runs": [r / line for r in runs],
            },
        ]
    with ramdisk() as tmp:
        lo = single_source(Path(tmp), None, int(1 * GiB * SCALE), memory=True)
        assert lo.raw_landed is not None
        raws, agains = zip(*lo.again, strict=True)
        ratios = [d / r for r, d in lo.again]
        rows += [
            {
                "name": "loopback: raw sendfile, discarded",
                "value": statistics.median(raws) / mb,
                "unit": "MB/s",
                "runs": [r / mb for r in raws],
            },
            {
                "name": "loopback: download into its files again",
                "value": statistics.median(agains) / mb,
                "unit": "MB/s",
                "runs": [d / mb for d in agains],
            },
            {
                "name": "loopback: download (files in memory) / raw",
                "value": statistics.median(ratios),
                "unit": "ratio",
                "target": 0.60,
                "higher_is_better": True,
                "runs": ratios,
            },
            {
                "name": "loopback: raw sendfile, written to a new file",
                "value": lo.raw_landed / mb,
                "unit": "MB/s",
            },
            {
                "name": "loopback: download into new files",
                "value": lo.transfer / mb,
                "unit": "MB/s",
                "baseline": lo.raw_landed / mb,
            },
            {
                "name": "loopback: download (new files) / raw discarded",
                "value": lo.transfer / lo.raw,
                "unit": "ratio",
            },
        ]
    return rows
