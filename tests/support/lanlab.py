"""A LAN in network namespaces, for tests and benchmarks (needs root and iproute2).

::

    with LanLab(n_hosts=3, rate="1gbit") as lab:
        proc = lab.run(0, [sys.executable, "server.py"], stdout=subprocess.PIPE)
        lab.exec(1, [sys.executable, "client.py", lab.hosts[0].addr])

Layout: a *switch* namespace holds a bridge (``br0``, multicast snooping off so
mDNS's 224.0.0.251 floods to every port); each host namespace has ``lo`` and
``eth0``, one end of a veth pair whose other end (``h<i>``) is a bridge port.
Every link lives inside a namespace the lab created, so nothing touches the
host's own network and deleting the namespaces deletes every link. Hosts get
``10.77.<y>.<i+1>/24`` with ``<y>`` random per lab, plus a ``224.0.0.0/4``
route on ``eth0`` (there is no default route, and multicast needs one).

Shaping: with a rate, each host's link gets a ``tbf`` qdisc in both
directions (``eth0`` egress is the upload, the switch port's egress the
download), so a host is limited like a machine on a switch port of that speed.
``burst`` defaults to one millisecond at the rate but at least 64 KiB (a
veth carries 64 KiB GSO packets; a smaller bucket makes tbf segment every one
of them) and ``latency`` (how long a packet may queue) to 5 ms:

=========  ============  =======  ======================================
rate       burst         latency  measured (one TCP stream, Python)
=========  ============  =======  ======================================
1gbit      125000 bytes  5 ms     960 Mbit/s goodput (unshaped: ~10 Gbit/s)
300mbit    65536 bytes   5 ms     285 Mbit/s
100mbit    65536 bytes   5 ms     97 Mbit/s
=========  ============  =======  ======================================

Goodput is about 96% of the rate (Ethernet, IP and TCP headers). A 1 ms
latency starves TCP at 100mbit (64 Mbit/s measured); a 32 KiB burst costs a
fifth of a gigabit (770 Mbit/s).

Cleanup is unconditional: leaving the ``with`` block (also by an exception or
KeyboardInterrupt), SIGTERM to the test process, and interpreter exit all kill
every process the lab started (by process group, then whatever is still inside
its namespaces) and delete its namespaces. Names are
``<prefix>-<owner pid>-<seq>-<sw|h<i>>``; :func:`sweep_stale` (run on every
lab start) removes the namespaces of owners that are no longer alive, the
leftovers of a run that was SIGKILLed.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import FrameType, TracebackType
from typing import Any

PREFIX = "lsl"
NETNS_DIR = "/run/netns"
_seq = itertools.count()
_live: set[LanLab] = set()
_live_lock = threading.RLock()
_prev_sigterm: Any = None

_RATE_UNITS = {
    "bit": 1,
    "kbit": 1_000,
    "mbit": 1_000_000,
    "gbit": 1_000_000_000,
    "tbit": 1_000_000_000_000,
    "bps": 8,
    "kbps": 8_000,
    "mbps": 8_000_000,
    "gbps": 8_000_000_000,
}


class LabError(RuntimeError):
    """A lab command failed; the message has the command and its stderr."""


def rate_bits(rate: str | int) -> int:
    """``"300mbit"`` -> 300_000_000 (tc's units; a bare number is bits per second)."""
    if isinstance(rate, int):
        return rate
    m = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", rate)
    unit = m.group(2).lower() if m else ""
    if not m or (unit and unit not in _RATE_UNITS):
        raise ValueError(f"{rate!r} is not a tc rate such as '1gbit' or '300mbit'")
    return int(float(m.group(1)) * _RATE_UNITS.get(unit, 1))


def tbf_params(rate: str | int) -> tuple[int, str]:
    """The default ``(burst bytes, latency)`` for ``rate``; see the module docstring."""
    return max(rate_bits(rate) // 8 // 1000, 65536), "5ms"


@dataclass(frozen=True)
class LabHost:
    index: int
    name: str  # the namespace
    addr: str
    ifname: str  # inside the host namespace
    port: str  # the bridge port in the switch namespace
    rate: str | None


def _run(argv: Sequence[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise LabError(f"{' '.join(argv)}: {proc.stderr.strip() or proc.returncode}")
    return proc


def _ns_pids(ns: str) -> list[int]:
    proc = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
    return [int(p) for p in proc.stdout.split() if p.isdigit()]


def _kill_ns_processes(ns: str) -> None:
    for _ in range(20):
        pids = [p for p in _ns_pids(ns) if p != os.getpid()]
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _delete_ns(ns: str) -> None:
    _kill_ns_processes(ns)
    subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _process_start(pid: int) -> float | None:
    """When ``pid`` started (epoch seconds), or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        with open("/proc/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime"))
    except (OSError, StopIteration, IndexError):
        return None
    return btime + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def _lab_namespaces(prefix: str) -> list[tuple[str, int]]:
    pattern = re.compile(rf"^{re.escape(prefix)}-(\d+)-\d+-(?:sw|h\d+)$")
    try:
        names = os.listdir(NETNS_DIR)
    except FileNotFoundError:
        return []
    return [(n, int(m.group(1))) for n in names if (m := pattern.match(n))]


def sweep_stale(prefix: str = PREFIX) -> list[str]:
    """Delete the namespaces (and kill the processes in them) of labs whose owner died.

    An owner counts as dead when its pid is gone or now belongs to a process
    that started after the namespace was made (a reused pid).
    """
    removed = []
    for ns, pid in _lab_namespaces(prefix):
        if pid == os.getpid():
            continue
        started = _process_start(pid)
        if started is not None:
            try:
                made = os.stat(os.path.join(NETNS_DIR, ns)).st_mtime
            except FileNotFoundError:
                continue
            if started <= made + 1:
                continue  # a live lab of another process
        _delete_ns(ns)
        removed.append(ns)
    return removed


def namespaces(prefix: str = PREFIX) -> list[str]:
    """Every lab namespace with this prefix that exists now (for tests)."""
    return [ns for ns, _ in _lab_namespaces(prefix)]


def _cleanup_all() -> None:
    with _live_lock:
        labs = list(_live)
    for lab in labs:
        lab.close()


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    _cleanup_all()
    signal.signal(signal.SIGTERM, _prev_sigterm or signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _track(lab: LanLab, live: bool) -> None:
    """Keep the set of live labs and the SIGTERM handler that cleans them up."""
    global _prev_sigterm
    with _live_lock:
        if live:
            _live.add(lab)
        else:
            _live.discard(lab)
        if threading.current_thread() is not threading.main_thread():
            return
        handler = signal.getsignal(signal.SIGTERM)
        if live and handler is not _on_sigterm and handler in (signal.SIG_DFL, None):
            _prev_sigterm = handler
            signal.signal(signal.SIGTERM, _on_sigterm)
        elif not _live and handler is _on_sigterm:
            signal.signal(signal.SIGTERM, _prev_sigterm or signal.SIG_DFL)


atexit.register(_cleanup_all)


_PING = r"""
import os, select, socket, struct, sys, time

def checksum(data):
    data += b"\0" * (len(data) % 2)
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    s = (s >> 16) + (s & 0xFFFF)
    return ~(s + (s >> 16)) & 0xFFFF

timeout = float(sys.argv[1])
ident = os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
for seq, addr in enumerate(sys.argv[2:]):
    header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    packet = struct.pack("!BBHHH", 8, 0, checksum(header + b"lanlab"), ident, seq) + b"lanlab"
    start = time.monotonic()
    rtt = None
    sock.sendto(packet, (addr, 0))
    while rtt is None and (left := start + timeout - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        data, (src, _) = sock.recvfrom(2048)
        ihl = (data[0] & 0x0F) * 4
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if kind == 0 and rid == ident and rseq == seq and src == addr:
            rtt = time.monotonic() - start
    print(addr, rtt if rtt is not None else "-", flush=True)
"""


class LanLab:
    """``n_hosts`` namespaces on one bridge; see the module docstring.

    :param rate: tbf rate for every host link (``"1gbit"``), or None for unshaped.
    :param per_host_rate: host index -> rate, overriding ``rate`` (None: unshaped).
    :param burst: tbf burst in bytes (default from :func:`tbf_params`).
    :param latency: tbf latency such as ``"5ms"``.
    :param subnet: the first three octets (``"10.77.5"``); random 10.77.y by default.
    :param prefix: namespace name prefix, shared with :func:`sweep_stale`.
    """

    def __init__(
        self,
        n_hosts: int = 2,
        rate: str | None = None,
        per_host_rate: Mapping[int, str | None] | None = None,
        *,
        burst: int | None = None,
        latency: str | None = None,
        subnet: str | None = None,
        prefix: str = PREFIX,
    ) -> None:
        if not 1 <= n_hosts <= 250:
            raise ValueError("a lab has 1 to 250 hosts")
        self.prefix = prefix
        self.id = f"{prefix}-{os.getpid()}-{next(_seq)}"
        self.switch = f"{self.id}-sw"
        net = subnet or f"10.77.{random.randrange(256)}"
        rates = {i: rate for i in range(n_hosts)} | dict(per_host_rate or {})
        self.hosts = [
            LabHost(i, f"{self.id}-h{i}", f"{net}.{i + 1}", "eth0", f"h{i}", rates[i])
            for i in range(n_hosts)
        ]
        self.burst = burst
        self.latency = latency
        self._procs: list[subprocess.Popen[Any]] = []
        self._made: list[str] = []
        self._lock = threading.RLock()
        self._closed = False

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> LanLab:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def start(self) -> None:
        sweep_stale(self.prefix)
        _track(self, True)
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _netns_add(self, ns: str) -> None:
        self._made.append(ns)  # before creating: an interrupted add is still cleaned up
        _run(["ip", "netns", "add", ns])
        _run(["ip", "-n", ns, "link", "set", "lo", "up"])

    def _build(self) -> None:
        sw = self.switch
        self._netns_add(sw)
        _run(["ip", "-n", sw, "link", "add", "br0", "type", "bridge", "stp_state", "0",
              "forward_delay", "0", "mcast_snooping", "0"])  # fmt: skip
        _run(["ip", "-n", sw, "link", "set", "br0", "up"])
        for h in self.hosts:
            self._netns_add(h.name)
            _run(["ip", "-n", sw, "link", "add", h.port, "type", "veth",
                  "peer", "name", h.ifname, "netns", h.name])  # fmt: skip
            _run(["ip", "-n", sw, "link", "set", h.port, "master", "br0", "up"])
            _run(["ip", "-n", h.name, "addr", "add", f"{h.addr}/24", "dev", h.ifname])
            _run(["ip", "-n", h.name, "link", "set", h.ifname, "up"])
            _run(["ip", "-n", h.name, "route", "add", "224.0.0.0/4", "dev", h.ifname])
            if h.rate is not None:
                burst, latency = tbf_params(h.rate)
                burst = self.burst or burst
                latency = self.latency or latency
                for ns, dev in ((h.name, h.ifname), (sw, h.port)):
                    _run(["tc", "-n", ns, "qdisc", "add", "dev", dev, "root", "tbf",
                          "rate", h.rate, "burst", str(burst), "latency", latency])  # fmt: skip

    def close(self) -> None:
        """Kill every process the lab started and delete its namespaces (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                self._stop_processes()
            finally:
                for ns in reversed(self._made):
                    _delete_ns(ns)
                self._made.clear()
                _track(self, False)

    def _stop_processes(self, grace: float = 1.0) -> None:
        running = [p for p in self._procs if p.poll() is None]
        for p in running:
            self._signal_group(p, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for p in running:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(max(0.0, deadline - time.monotonic()))
        for p in running:
            self._signal_group(p, signal.SIGKILL)  # also children that outlived the leader
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(5)
        for ns in self._made:
            _kill_ns_processes(ns)

    @staticmethod
    def _signal_group(p: subprocess.Popen[Any], sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, sig)

    # -- using it ----------------------------------------------------------

    def _argv(self, i: int, argv: Sequence[str]) -> list[str]:
        if self._closed or not self._made:
            raise LabError("the lab is not running")
        return ["ip", "netns", "exec", self.hosts[i].name, *map(str, argv)]

    def run(self, i: int, argv: Sequence[str], **popen_kw: Any) -> subprocess.Popen[Any]:
        """Start ``argv`` inside host ``i`` in its own process group; the lab kills it."""
        popen_kw["start_new_session"] = True
        with self._lock:
            proc = subprocess.Popen(self._argv(i, argv), **popen_kw)
            self._procs.append(proc)
        return proc

    def exec(
        self,
        i: int,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        check: bool = False,
        **run_kw: Any,
    ) -> subprocess.CompletedProcess[Any]:
        """Run ``argv`` inside host ``i`` to completion (output captured as text)."""
        run_kw.setdefault("capture_output", True)
        run_kw.setdefault("text", True)
        return subprocess.run(self._argv(i, argv), timeout=timeout, check=check, **run_kw)

    def ping(self, i: int, *addrs: str, timeout: float = 2.0) -> dict[str, float | None]:
        """ICMP echo from host ``i`` to each address: round-trip seconds, or None."""
        out = self.exec(i, [sys.executable, "-c", _PING, str(timeout), *addrs], check=True)
        result: dict[str, float | None] = {}
        for line in out.stdout.split("\n"):
            if line.strip():
                addr, rtt = line.split()
                result[addr] = None if rtt == "-" else float(rtt)
        return result
