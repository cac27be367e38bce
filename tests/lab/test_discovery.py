"""mDNS discovery between real network namespaces: seen, updated, gone, twins."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from support.lanlab import LanLab

pytestmark = pytest.mark.needs("netns")

PROBE = Path(__file__).resolve().parents[1] / "support" / "mdns_probe.py"


class Probe:
    """An mdns_probe.py process in a lab host, with its JSON events collected."""

    def __init__(self, lab: LanLab, index: int, peer_id: str | None = None) -> None:
        self.peer_id = peer_id or f"{index:02d}" + os.urandom(15).hex()
        self.started = time.time()
        self.proc = lab.run(
            index,
            [sys.executable, str(PROBE), self.peer_id, "--rev", "1", "--port", str(5000 + index)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.events.append(json.loads(line))
                self._cond.notify_all()

    def wait_for(self, match: Callable[[dict], bool], timeout: float) -> dict:
        """The first event ``match`` accepts, waiting up to ``timeout`` seconds for it."""

        def first() -> dict | None:
            return next((e for e in self.events if match(e)), None)

        with self._cond:
            found = self._cond.wait_for(first, timeout)
        assert found, f"{self.peer_id}: no matching event within {timeout}s; got {self.events}"
        return found


def test_mdns_peers_find_each_other_update_and_say_goodbye():
    with LanLab(n_hosts=3) as lab:
        probes = [Probe(lab, i) for i in range(3)]

        # everyone sees the two others, with the right address, port and rev, within 5 s
        for p in probes:
            for other, host in zip(probes, lab.hosts, strict=True):
                if other is p:
                    continue
                e = p.wait_for(lambda e, o=other: e.get("peer_id") == o.peer_id, timeout=5)
                assert e["event"] == "seen" and e["loop_thread"]
                assert (e["host"], e["port"], e["library_rev"]) == (host.addr, 5000 + host.index, 1)
                assert e["t"] - other.started < 5
        assert not any(e.get("peer_id") == p.peer_id for p in probes for e in p.events)

        # a new library_rev reaches the others
        probes[0].proc.send_signal(signal.SIGUSR1)
        updated = probes[0].wait_for(lambda e: e["event"] == "updated", timeout=2)
        for p in probes[1:]:
            e = p.wait_for(
                lambda e: e.get("peer_id") == probes[0].peer_id and e.get("library_rev") == 2,
                timeout=3,
            )
            assert e["t"] - updated["t"] < 3

        # SIGTERM: the probe sends goodbye, closes within a second, and the others report it gone
        stop = time.time()
        probes[2].proc.send_signal(signal.SIGTERM)
        assert probes[2].proc.wait(5) == 0
        assert probes[2].wait_for(lambda e: e["event"] == "stopped", 1)["close_secs"] < 1.0
        for p in probes[:2]:
            e = p.wait_for(
                lambda e: e["event"] == "gone" and e["peer_id"] == probes[2].peer_id, timeout=3
            )
            assert e["t"] - stop < 3 and e["loop_thread"]

        # a second peer with a live peer's id (a copied state directory) fails clearly
        twin = Probe(lab, 2, peer_id=probes[0].peer_id)
        assert twin.proc.wait(10) != 0
        assert twin.proc.stderr is not None
        assert "another machine on the LAN announces peer id" in twin.proc.stderr.read()
