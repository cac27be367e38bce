"""Discovery backends: registration, static addresses, mDNS names (mDNS itself: lab)."""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.discovery import static
from lanspread_core.discovery.base import Announcement, SeenPeer
from lanspread_core.discovery.mdns import MdnsDiscovery, instance_name, pick_address
from lanspread_core.discovery.static import StaticDiscovery
from lanspread_core.plugin.registry import load_registry

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
