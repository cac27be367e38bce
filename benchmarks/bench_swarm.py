"""A crowd downloading one new game at once, against BitTorrent; and resuming a download.

In the namespace LAN lab, every host on its own 100 Mbit tbf link:

* **swarm**: one seed holding a 48 MiB fixture game and N receivers (8 and
  16; ``LANSPREAD_BENCH_SWARM=8`` for fewer), real ``lanspread peer``
  processes with static discovery, every receiver given the seed's address
  and every other receiver's. All send ``download`` at the same moment.
  Reported: one receiver alone (same lab, same run), the time until all N
  ended, all / alone (target <= 1.5), the spread between the first and the
  last receiver, failures (target 0; a failed download is never retried),
  what the seed's uplink carried, and per receiver the bytes by source (the
  ``download`` result's ``peers`` map);
* **BitTorrent baseline**: the same bytes, hosts, links and N with Debian's
  ``aria2c`` as seed and leechers and ``opentracker`` as the tracker (on a
  host of its own); Lanspread's all-N time / aria2c's (target <= 1.0).
  The fairness choices are in docs/benchmarks.md ("Swarm and resume");
* **resume**: one source, one receiver, a 256 MiB game: ``cancel`` once the
  progress reaches half, then ``download`` again; the bytes the second run
  fetched (the sum of its result's ``peers`` map) / the game (target <= 0.55).

Needs root (network namespaces) and the ``aria2`` and ``opentracker`` packages.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from benchmarks.bench_download import hashed, ramdisk  # noqa: E402
from benchmarks.torrent import bdecode, make_torrent  # noqa: E402
from lanspread_fixture.gamesets import create_set  # noqa: E402
from support.lanlab import LanLab  # noqa: E402
from support.peerproc import PeerProc, sources_of  # noqa: E402

MiB = 1 << 20
GAME = "aurora"
SWARM_SIZE = 48 * MiB
RESUME_SIZE = 256 * MiB
RATE = "100mbit"
COUNTS = [int(n) for n in os.environ.get("LANSPREAD_BENCH_SWARM", "8,16").split(",") if n]
#: the control (QUIC) port of every Lanspread peer; each host is its own namespace
PORT = 7000
TRACKER_PORT = 6969
PY = sys.executable
#: bounds of every wait, in seconds
DOWNLOAD_TIMEOUT = 300.0
SETUP_TIMEOUT = 60.0
STOP_GRACE = 5.0

#: aria2c as a BitTorrent peer: tracker only (no DHT, LPD or PEX), seeding until
#: stopped, files sized with ftruncate like Lanspread's, no console chatter
ARIA2 = [
    "aria2c",
    "--no-conf=true",
    "--enable-dht=false",
    "--enable-dht6=false",
    "--bt-enable-lpd=false",
    "--enable-peer-exchange=false",
    "--disable-ipv6=true",
    "--seed-ratio=0.0",
    "--listen-port=6881",
    "--file-allocation=trunc",
    "--summary-interval=0",
    "--console-log-level=warn",
    "--auto-save-interval=0",
]


# --------------------------------------------------------------------- lab side
def uplinks(lab: LanLab, hosts: Sequence[int]) -> dict[int, int]:
    """Bytes each host has sent so far: the counter of its uplink's tbf qdisc
    (headers and the ACKs of what it received included)."""
    out = {}
    for i in hosts:
        proc = subprocess.run(
            ["tc", "-n", lab.hosts[i].name, "-s", "-j", "qdisc", "show", "dev", "eth0"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        )
        out[i] = sum(q.get("bytes", 0) for q in json.loads(proc.stdout) if q.get("root"))
    return out


def sent_since(lab: LanLab, before: dict[int, int]) -> dict[int, int]:
    after = uplinks(lab, list(before))
    return {i: after[i] - before[i] for i in before}


def stop(procs: Sequence[subprocess.Popen[Any]]) -> None:
    """SIGTERM the process groups this harness started, then SIGKILL what is left
    after a grace shared by all of them."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        running = [p for p in procs if p.poll() is None]
        for p in running:
            with suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
        deadline = time.monotonic() + STOP_GRACE
        for p in running:
            with suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))


# --------------------------------------------------------------------- results
@dataclass
class Receiver:
    label: str
    host: int
    ok: bool = False
    seconds: float | None = None  # from the common start until its download ended
    error: str | None = None
    by_source: dict[str, int] = field(default_factory=dict)  # bytes, Lanspread only
    #: end-game copies that arrived second, by source (Lanspread, where reported)
    duplicates: dict[str, int] = field(default_factory=dict)
    own_seconds: float | None = None  # the peer's own figure (Lanspread only)


@dataclass
class Round:
    system: str
    receivers: list[Receiver]
    sent: dict[str, int]  # label -> uplink bytes during the round

    @property
    def failures(self) -> int:
        return sum(not r.ok for r in self.receivers)

    @property
    def all_seconds(self) -> float:
        """Until the last download ended, finished or failed (nan: none ended)."""
        ended = [r.seconds for r in self.receivers if r.seconds is not None]
        return max(ended) if ended else float("nan")

    @property
    def spread(self) -> float | None:
        """From the first to the last download that finished (None: fewer than two)."""
        done = sorted(r.seconds for r in self.receivers if r.ok and r.seconds is not None)
        return done[-1] - done[0] if len(done) > 1 else None

    def detail(self) -> list[dict[str, Any]]:
        return [
            {
                "receiver": r.label,
                "ok": r.ok,
                "seconds": r.seconds,
                "own_seconds": r.own_seconds,
                "error": r.error,
                "bytes_by_source": r.by_source,
                "duplicates_by_source": r.duplicates,
                "uplink_bytes": self.sent.get(r.label),
            }
            for r in self.receivers
        ]


def _order(label: str) -> tuple[bool, int, str]:
    """seed, r1, r2, ..., r10: the hosts' order."""
    return label != "seed", int(label[1:]) if label[1:].isdigit() else 0, label


def report(rnd: Round) -> None:
    """Per receiver: when it ended and where its bytes came from (stderr)."""
    n = len(rnd.receivers)
    print(f"{rnd.system}, {n} receiver{'s' * (n > 1)}:", file=sys.stderr)
    for r in rnd.receivers:
        when = f"{r.seconds:7.2f} s" if r.seconds is not None else "      - s"
        fields = [f"  {r.label:>4} {when}  {'ok    ' if r.ok else 'FAILED'}"]
        if r.by_source:
            fields.append(
                " ".join(
                    f"{src} {r.by_source[src] / MiB:.1f}" for src in sorted(r.by_source, key=_order)
                )
                + " MiB"
            )
        if r.duplicates:
            fields.append(f"duplicates {sum(r.duplicates.values()) / MiB:.1f} MiB")
        fields.append(f"sent {rnd.sent.get(r.label, 0) / MiB:.1f} MiB")
        if r.error:
            fields.append(r.error[:300])
        print("  ".join(fields), file=sys.stderr)
    print(f"  seed sent {rnd.sent.get('seed', 0) / MiB:.1f} MiB", file=sys.stderr, flush=True)


# --------------------------------------------------------------------- Lanspread
def _peer(work: Path, catalog: Path, lab: LanLab, i: int, static: Sequence[str]) -> PeerProc:
    peers = [a for s in static for a in ("--peer", s)]
    return PeerProc(
        work,
        args=["--listen", f"{lab.hosts[i].addr}:{PORT}", "--discovery", "static", *peers],
        prefix=["ip", "netns", "exec", lab.hosts[i].name],
        catalog=catalog,
    )


def _control(lab: LanLab, i: int) -> str:
    return f"{lab.hosts[i].addr}:{PORT}"


def lanspread_round(
    lab: LanLab, work: Path, catalog: Path, seed: PeerProc, hosts: Sequence[int]
) -> Round:
    """Receivers on ``hosts`` (fresh peers, each told of the seed and of every
    other receiver) all send ``download`` at once."""
    labels = {seed.peer_id: "seed"}
    receivers: list[PeerProc] = []
    with ExitStack() as stack:
        for i in hosts:
            static = [_control(lab, 0)] + [_control(lab, j) for j in hosts if j != i]
            peer = stack.enter_context(_peer(work / f"h{i}", catalog, lab, i, static))
            labels[peer.peer_id] = f"r{i}"
            receivers.append(peer)
        for peer in receivers:  # the whole mesh, then the game listed from the seed
            peer.ok(
                "wait-peers",
                timeout=SETUP_TIMEOUT + 5,
                count=len(hosts),
                timeout_ms=int(SETUP_TIMEOUT * 1000),
            )
            sources_of(peer, GAME, 1, timeout=SETUP_TIMEOUT)
        out = [Receiver(f"r{i}", i) for i in hosts]
        gate = threading.Barrier(len(hosts) + 1, timeout=SETUP_TIMEOUT)
        ends: list[tuple[float, dict[str, Any]] | None] = [None] * len(hosts)

        def fetch(k: int) -> None:
            try:
                gate.wait()
            except threading.BrokenBarrierError:  # the harness failed before the start
                return
            try:
                record = receivers[k].call(
                    "download", timeout=DOWNLOAD_TIMEOUT, game_id=GAME, install=False, wait=True
                )
            except (AssertionError, TimeoutError) as exc:  # the peer died, or no answer
                record = {"kind": "error", "error": f"{type(exc).__name__}: {exc}"}
            ends[k] = (time.monotonic(), record)

        threads = [
            threading.Thread(target=fetch, args=(k,), daemon=True) for k in range(len(hosts))
        ]
        for t in threads:
            t.start()
        try:
            before = uplinks(lab, [0, *hosts])
            gate.wait()
        except BaseException:
            gate.abort()  # no receiver waits out the barrier's timeout
            raise
        start = time.monotonic()
        for t in threads:
            t.join(DOWNLOAD_TIMEOUT + SETUP_TIMEOUT)
        sent = sent_since(lab, before)
        for rec, end in zip(out, ends, strict=True):
            if end is None:
                rec.error = "the harness got no answer in time"
                continue
            at, record = end
            rec.seconds = at - start
            if record.get("kind") == "result":
                result = record["result"]
                rec.ok = True
                rec.own_seconds = result.get("seconds")
                rec.by_source = {
                    labels.get(pid, pid[:8]): int(b) for pid, b in result.get("peers", {}).items()
                }
                rec.duplicates = {
                    labels.get(pid, pid[:8]): int(b)
                    for pid, b in (result.get("duplicates") or {}).items()
                    if b
                }
            else:
                rec.error = str(record.get("error"))
    names = {0: "seed"} | {i: f"r{i}" for i in hosts}
    return Round("lanspread", out, {names[i]: b for i, b in sent.items()})


def lanspread_swarm(lab: LanLab, work: Path, counts: Sequence[int]) -> tuple[Round, list[Round]]:
    catalog = work / "catalog.json"
    create_set(work / "seed" / "games", "alpha", catalog=catalog, size=SWARM_SIZE)
    with _peer(work / "seed", catalog, lab, 0, []) as seed:
        hashed(seed)
        alone = lanspread_round(lab, work / "alone", catalog, seed, [1])
        report(alone)
        crowds = []
        for n in counts:
            crowds.append(lanspread_round(lab, work / f"n{n}", catalog, seed, range(1, n + 1)))
            report(crowds[-1])
            shutil.rmtree(work / f"n{n}")
    return alone, crowds


# --------------------------------------------------------------------- BitTorrent
def scrape_complete(lab: LanLab, tracker: int, info_hash: bytes) -> int:
    """How many seeders the tracker knows for ``info_hash`` (asked inside the lab)."""
    url = (
        f"http://{lab.hosts[tracker].addr}:{TRACKER_PORT}/scrape?info_hash="
        + urllib.parse.quote_from_bytes(info_hash)
    )
    code = (
        "import sys, urllib.request\n"
        "sys.stdout.buffer.write(urllib.request.urlopen(sys.argv[1], timeout=5).read())"
    )
    out = lab.exec(tracker, [PY, "-c", code, url], timeout=15, text=False)
    if out.returncode != 0:
        return 0
    files = bdecode(out.stdout).get(b"files", {})
    return int(files.get(info_hash, {}).get(b"complete", 0))


def wait_until(check: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    raise TimeoutError(f"{what} within {timeout:.0f} s")


def bt_round(lab: LanLab, work: Path, torrent: Path, hosts: Sequence[int]) -> Round:
    """aria2c leechers on ``hosts``, held at a gate, then released together."""
    procs: dict[int, subprocess.Popen[Any]] = {}
    out = {i: Receiver(f"r{i}", i) for i in hosts}
    try:
        for i in hosts:
            d = work / f"h{i}"
            (d / "data").mkdir(parents=True)
            hook = d / "done.sh"
            # before seeding starts; the wall clock, as the harness's time.time()
            hook.write_text(f"#!/bin/sh\ndate +%s.%N > {d}/done.tmp && mv {d}/done.tmp {d}/done\n")
            hook.chmod(0o755)
            argv = [
                "sh",
                "-c",
                'read -r _ && exec "$@"',
                "gate",
                *ARIA2,
                f"--dir={d / 'data'}",
                f"--on-bt-download-complete={hook}",
                str(torrent),
            ]
            with (d / "aria2c.log").open("wb") as log:
                procs[i] = lab.run(i, argv, stdin=subprocess.PIPE, stdout=log, stderr=log)
        time.sleep(0.5)  # every shell is waiting at its gate
        before = uplinks(lab, [0, *hosts])
        start_wall, start = time.time(), time.monotonic()
        for p in procs.values():
            assert p.stdin is not None
            p.stdin.write(b"go\n")
            p.stdin.close()
        waiting = set(hosts)
        deadline = start + DOWNLOAD_TIMEOUT
        while waiting and time.monotonic() < deadline:
            for i in list(waiting):
                done = work / f"h{i}" / "done"
                if done.exists():
                    out[i].ok = True
                    out[i].seconds = float(done.read_text()) - start_wall
                    waiting.discard(i)
                elif procs[i].poll() is not None:
                    out[i].seconds = time.monotonic() - start
                    log = (work / f"h{i}" / "aria2c.log").read_text(errors="replace")
                    out[i].error = f"aria2c exited {procs[i].returncode}: {log[-300:]}"
                    waiting.discard(i)
            time.sleep(0.02)
        for i in waiting:
            out[i].error = f"not complete after {DOWNLOAD_TIMEOUT:.0f} s"
        sent = sent_since(lab, before)
    finally:
        stop(list(procs.values()))
    names = {0: "seed"} | {i: f"r{i}" for i in hosts}
    return Round("aria2c", list(out.values()), {names[i]: b for i, b in sent.items()})


def bt_swarm(lab: LanLab, work: Path, counts: Sequence[int]) -> tuple[Round, list[Round]]:
    seed_dir = work / "seed"
    create_set(seed_dir / "games", "alpha", catalog=work / "catalog.json", size=SWARM_SIZE)
    root = seed_dir / "games" / GAME
    files = sorted(p for p in root.iterdir() if p.suffix == ".eti")  # what Lanspread transfers
    tracker = len(lab.hosts) - 1
    announce = f"http://{lab.hosts[tracker].addr}:{TRACKER_PORT}/announce"
    data, info_hash = make_torrent(root, files, announce)
    torrent = work / f"{GAME}.torrent"
    torrent.write_bytes(data)
    # opentracker chroots into -d and reads the whitelist inside it, as "nobody"
    (work / "tracker").mkdir()
    (work / "tracker" / "whitelist").write_text(info_hash.hex() + "\n")
    os.chmod(work / "tracker", 0o755)
    addr = lab.hosts[tracker].addr
    procs = []
    try:
        with (work / "opentracker.log").open("wb") as log:
            procs.append(
                lab.run(
                    tracker,
                    [
                        "opentracker",
                        "-i",
                        addr,
                        "-p",
                        str(TRACKER_PORT),
                        "-P",
                        str(TRACKER_PORT),
                        "-u",
                        "nobody",
                        "-d",
                        str(work / "tracker"),
                        "-w",
                        "/whitelist",
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        with (work / "seed.log").open("wb") as log:
            procs.append(
                lab.run(
                    0,
                    [
                        *ARIA2,
                        "--check-integrity=true",
                        "--bt-hash-check-seed=true",
                        f"--dir={seed_dir / 'games'}",
                        str(torrent),
                    ],
                    stdout=log,
                    stderr=log,
                )
            )
        wait_until(
            lambda: scrape_complete(lab, tracker, info_hash) >= 1,
            SETUP_TIMEOUT,
            "the aria2c seed did not announce itself to the tracker",
        )
        alone = bt_round(lab, work / "alone", torrent, [1])
        report(alone)
        crowds = []
        for n in counts:
            crowds.append(bt_round(lab, work / f"n{n}", torrent, range(1, n + 1)))
            report(crowds[-1])
            shutil.rmtree(work / f"n{n}")
    finally:
        stop(procs)
    return alone, crowds


# --------------------------------------------------------------------- resume
@dataclass
class Resume:
    total: int
    at_cancel: float  # bytes/total of the last progress event before cancel
    end_event: str  # how the first run ended: download-cancelled, -failed, ...
    fetched: int | None  # the second run: the sum of its result's ``peers`` map
    result_bytes: int | None  # the second run's result ``bytes``
    wire: int  # bytes that reached the receiver's link in the second run (tc)
    error: str | None = None


def resume(work: Path) -> Resume:
    catalog = work / "catalog.json"
    create_set(work / "seed" / "games", "alpha", catalog=catalog, size=RESUME_SIZE)
    with (
        LanLab(n_hosts=2, rate=RATE) as lab,
        _peer(work / "seed", catalog, lab, 0, []) as seed,
    ):
        hashed(seed)
        with _peer(work / "h1", catalog, lab, 1, [_control(lab, 0)]) as r:
            sources_of(r, GAME, 1, timeout=SETUP_TIMEOUT)
            mark = r.mark()
            r.ok("download", game_id=GAME, install=False)

            def ends(e: dict[str, Any]) -> bool:
                return e.get("game_id") == GAME and e.get("event") in (
                    "download-cancelled",
                    "download-failed",
                    "download-finished",
                    "download-all-peers-gone",
                )

            half = r.wait_event(
                lambda e: (
                    ends(e)
                    or (
                        e.get("event") == "download-progress"
                        and e.get("game_id") == GAME
                        and e["bytes"] >= 0.5 * e["total"]
                    )
                ),
                timeout=DOWNLOAD_TIMEOUT,
                since=mark,
            )
            if half["event"] != "download-progress":
                return Resume(
                    0,
                    float("nan"),
                    half["event"],
                    None,
                    None,
                    0,
                    f"the first run ended before half: {half}",
                )
            total = int(half["total"])
            r.ok("cancel", game_id=GAME)
            end = r.wait_event(ends, timeout=SETUP_TIMEOUT, since=mark)
            # the switch port's egress is what reaches host 1
            before = _port_bytes(lab, 1)
            record = r.call(
                "download", timeout=DOWNLOAD_TIMEOUT, game_id=GAME, install=False, wait=True
            )
            wire = _port_bytes(lab, 1) - before
            if record["kind"] != "result":
                return Resume(
                    total,
                    half["bytes"] / total,
                    end["event"],
                    None,
                    None,
                    wire,
                    str(record.get("error")),
                )
            result = record["result"]
            return Resume(
                total,
                half["bytes"] / total,
                end["event"],
                sum(int(b) for b in result.get("peers", {}).values()),
                result.get("bytes"),
                wire,
            )


def _port_bytes(lab: LanLab, i: int) -> int:
    proc = subprocess.run(
        ["tc", "-n", lab.switch, "-s", "-j", "qdisc", "show", "dev", lab.hosts[i].port],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    )
    return sum(q.get("bytes", 0) for q in json.loads(proc.stdout) if q.get("root"))


# --------------------------------------------------------------------- rows
def swarm_rows(ls: tuple[Round, list[Round]], bt: tuple[Round, list[Round]]) -> list[dict]:
    rows: list[dict] = []
    (ls_alone, ls_crowds), (bt_alone, bt_crowds) = ls, bt
    for alone in (ls_alone, bt_alone):
        rows.append(
            {
                "name": f"swarm: {alone.system}, 1 receiver alone",
                "value": alone.all_seconds,
                "unit": "s",
                "failures": alone.failures,
                "receivers": alone.detail(),
            }
        )
    for ls_n, bt_n in zip(ls_crowds, bt_crowds, strict=True):
        n = len(ls_n.receivers)
        for rnd, alone in ((ls_n, ls_alone), (bt_n, bt_alone)):
            who = f"swarm {n}: {rnd.system}"
            rows += [
                {
                    "name": f"{who}, all {n} ended",
                    "value": rnd.all_seconds,
                    "unit": "s",
                    "baseline": alone.all_seconds,
                    "receivers": rnd.detail(),
                    "sent_bytes": rnd.sent,
                },
                {
                    "name": f"{who}, all / alone",
                    "value": rnd.all_seconds / alone.all_seconds,
                    "unit": "ratio",
                    **({"target": 1.5} if rnd.system == "lanspread" else {}),
                },
                {"name": f"{who}, first to last", "value": rnd.spread, "unit": "s"},
                {
                    "name": f"{who}, failed downloads",
                    "value": rnd.failures,
                    "unit": "count",
                    **({"target": 0} if rnd.system == "lanspread" else {}),
                    "errors": [r.error for r in rnd.receivers if r.error],
                },
                {
                    "name": f"{who}, seed sent / (N x game)",
                    "value": rnd.sent.get("seed", 0) / (n * SWARM_SIZE),
                    "unit": "ratio",
                },
                {
                    "name": f"{who}, every host sent / (N x game)",
                    "value": sum(rnd.sent.values()) / (n * SWARM_SIZE),
                    "unit": "ratio",
                },
            ]
        rows.append(
            {
                "name": f"swarm {n}: lanspread all / aria2c all",
                "value": ls_n.all_seconds / bt_n.all_seconds,
                "unit": "ratio",
                "target": 1.0,
            }
        )
    return rows


def resume_rows(res: Resume) -> list[dict]:
    fetched = res.fetched / res.total if res.fetched is not None and res.total else float("nan")
    return [
        {
            "name": "resume 256 MiB: done at cancel",
            "value": res.at_cancel,
            "unit": "fraction",
            "end_event": res.end_event,
        },
        {
            "name": "resume 256 MiB: second run fetched / game",
            "value": fetched,
            "unit": "fraction",
            "target": 0.55,
            "fetched_bytes": res.fetched,
            "game_bytes": res.total,
            "result_bytes": res.result_bytes,
            "error": res.error,
        },
        {
            "name": "resume 256 MiB: second run on the wire / game",
            "value": res.wire / res.total if res.total else float("nan"),
            "unit": "fraction",
        },
    ]


def preflight() -> None:
    """One line and a non-zero exit when this machine cannot run the benchmark."""
    if os.geteuid() != 0:
        sys.exit("bench_swarm needs root (network namespaces): sudo make bench")
    missing = [t for t in ("aria2c", "opentracker", "tc", "ip") if shutil.which(t) is None]
    if missing:
        sys.exit(
            f"bench_swarm needs {', '.join(missing)}: apt-get install aria2 opentracker iproute2"
        )


def run() -> list[dict]:
    preflight()
    counts = sorted(set(COUNTS))
    hosts = 1 + max(counts) + 1  # the seed, the receivers, the tracker
    with ramdisk() as tmp, LanLab(n_hosts=hosts, rate=RATE) as lab:
        ls = lanspread_swarm(lab, Path(tmp) / "lanspread", counts)
        bt = bt_swarm(lab, Path(tmp) / "bittorrent", counts)
    with ramdisk() as tmp:
        res = resume(Path(tmp))
    print(
        f"resume: cancelled at {res.at_cancel:.1%} ({res.end_event}), "
        f"second run fetched {res.fetched} of {res.total} bytes; error: {res.error}",
        file=sys.stderr,
    )
    return swarm_rows(ls, bt) + resume_rows(res)
