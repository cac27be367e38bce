"""Whole peers in the namespace LAN lab (root and iproute2; CI runs as root)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.lanlab import LanLab
from support.peerproc import PeerProc

pytestmark = pytest.mark.needs("netns")


def test_three_peers_find_each_other_by_mdns_alone(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    sets = ("alpha", "bravo", "charlie")
    for i, name in enumerate(sets):
        create_set(tmp_path / f"h{i}" / "games", name, catalog=catalog)
    with LanLab(n_hosts=3) as lab:
        started = time.monotonic()
        peers = [
            PeerProc(
                tmp_path / f"h{i}",
                args=["--discovery", "mdns", "--listen", f"{lab.hosts[i].addr}:0"],
                prefix=["ip", "netns", "exec", lab.hosts[i].name],
                catalog=catalog,
            )
            for i in range(3)
        ]
        try:
            for peer in peers:
                left = 5 - (time.monotonic() - started)
                assert peer.ok("wait-peers", count=2, timeout_ms=max(0, int(left * 1000)))
            for peer in peers:
                ids = {p["peer_id"] for p in peer.ok("peers")["peers"]}
                assert ids == {p.peer_id for p in peers} - {peer.peer_id}
                addrs = {p["addr"].split(":")[0] for p in peer.ok("peers")["peers"]}
                assert addrs <= {h.addr for h in lab.hosts}
            # and their libraries follow: charlie's dunes is seen on alpha's host
            peers[0].wait_event(
                lambda e: e["event"] == "peer-library" and "dunes" in e["games"], timeout=5
            )
        finally:
            for peer in peers:
                peer.__exit__()
