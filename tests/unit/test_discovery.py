"""Discovery backends: static addresses (unit) and mDNS between real namespaces (lab)."""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lanlab import LanLab
from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.discovery import static
from lanspread_core.discovery.base import Announcement, SeenPeer
from lanspread_core.discovery.mdns import MdnsDiscovery, instance_name, pick_address
from lanspread_core.discovery.static import StaticDiscovery
from lanspread_core.plugin.registry import load_registry

PROBE = Path(__file__).with_name("mdns_probe.py")
ME = Announcement("a" * 32, 1, 1, 4433, 4434)


class ListSink:
    def __init__(self) -> None:
        self.seen_peers: list[SeenPeer] = []
        self.gone_ids: list[str] = []

    def seen(self, peer: SeenPeer) -> None:
        self.seen_peers.append(peer)

    def gone(self, peer_id: str) -> None:
        self.gone_ids.append(peer_id)


def config(*peers: str) -> PeerConfig:
    return PeerConfig(
        games_dir=Path("/nonexistent"),
        state_dir=Path("/nonexistent"),
        static_peers=tuple(HostPort.parse(p) for p in peers),
    )


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    with anyio.fail_after(timeout):
        while not condition():
            await anyio.sleep(0.01)


# -- registration -------------------------------------------------------------


def test_builtin_backends_are_registered_through_the_entry_point():
    registry = load_registry()
    mdns = registry.discovery["mdns"].factory(config())
    static_backend = registry.discovery["static"].factory(config("10.1.2.3:7000"))
    assert isinstance(mdns, MdnsDiscovery) and mdns.name == "mdns"
    assert isinstance(static_backend, StaticDiscovery)
    assert static_backend.peers == (HostPort.parse("10.1.2.3:7000"),)
    assert registry.owners["discovery:mdns"] == registry.owners["discovery:static"] == "discovery"


# -- static -------------------------------------------------------------------


@pytest.mark.anyio
async def test_static_reports_every_peer_on_start_and_again():
    backend = StaticDiscovery(
        config("10.1.2.3:7000", "localhost:7001", "[::1]:7002"), interval=0.05
    )
    sink = ListSink()
    async with anyio.create_task_group() as tg:
        await tg.start(backend.run, ME, sink)
        await until(lambda: len(sink.seen_peers) >= 3)
        first = {(p.host, p.port) for p in sink.seen_peers[:3]}
        await backend.update(ME)  # a no-op
        await until(lambda: len(sink.seen_peers) >= 9)  # three rounds
        tg.cancel_scope.cancel()
    assert first == {("10.1.2.3", 7000), ("127.0.0.1", 7001), ("::1", 7002)}
    assert all(p.peer_id is None and p.library_rev is None for p in sink.seen_peers)
    assert {p.source for p in sink.seen_peers} == {"static"}
    assert sink.gone_ids == []


@pytest.mark.anyio
async def test_static_survives_an_unresolvable_name_and_logs_it_once(monkeypatch, caplog):
    real = anyio.getaddrinfo
    broken = {"down.example": True}

    async def fake_getaddrinfo(host: str, port: int, **kw: object) -> list:
        if broken.get(host):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        if host == "down.example":
            host = "127.0.0.1"
        return await real(host, port, **kw)

    monkeypatch.setattr(static.anyio, "getaddrinfo", fake_getaddrinfo)
    backend = StaticDiscovery(config("down.example:7000", "10.0.0.9:7001"), interval=0.02)
    sink = ListSink()
    caplog.set_level(logging.INFO, logger=static.__name__)
    async with anyio.create_task_group() as tg:
        await tg.start(backend.run, ME, sink)
        await until(lambda: len(sink.seen_peers) >= 5)  # five rounds without it
        broken["down.example"] = False  # it comes up
        await until(lambda: ("127.0.0.1", 7000) in {(p.host, p.port) for p in sink.seen_peers})
        tg.cancel_scope.cancel()
    warnings = [r for r in caplog.records if "does not resolve" in r.getMessage()]
    assert len(warnings) == 1
    assert all(p.host == "10.0.0.9" for p in sink.seen_peers[:5])


@pytest.mark.anyio
async def test_static_without_peers_just_waits():
    sink = ListSink()
    with anyio.move_on_after(0.1):
        async with anyio.create_task_group() as tg:
            await tg.start(StaticDiscovery(config()).run, ME, sink)
    assert sink.seen_peers == []


# -- mdns helpers -------------------------------------------------------------


def test_pick_address_prefers_ipv4_on_our_network():
    local = [ipaddress.ip_network("192.168.1.0/24")]
    assert pick_address(["fe80::1%2", "10.9.0.5", "192.168.1.7"], local) == "192.168.1.7"
    assert pick_address(["fe80::1%2", "2001:db8::1"], local) == "2001:db8::1"
    assert pick_address(["127.0.0.1", "10.9.0.5"]) == "10.9.0.5"
    assert pick_address([]) is None


def test_instance_names_are_dns_labels():
    assert instance_name("0123abcd" * 4) == "0123abcd" * 4 + "._lanspread._udp.local."
    odd = instance_name("not.a label")
    assert odd.endswith("._lanspread._udp.local.") and "." not in odd.split("._lanspread")[0]


# -- mdns in the lab ----------------------------------------------------------


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


@pytest.mark.lab
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
