"""The party catalog between three peers in the namespace LAN lab, found by mDNS alone:
two guests started with no catalog take the organizer's, download from it, and
follow its next publish (root and iproute2; CI runs as root)."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.lanlab import LanLab
from support.peerproc import PeerProc

pytestmark = pytest.mark.needs("netns")

#: generous; nothing here is timed
DEADLINE = 60.0


def test_a_party_catalog_reaches_guests_found_by_mdns(tmp_path: Path) -> None:
    catalog = tmp_path / "party.json"
    create_set(tmp_path / "h0" / "games", "alpha", catalog=catalog)
    key = tmp_path / "party.key"
    party_key = run_cli("party", "init", "--key", key, check=True).stdout.split()[-1]
    with LanLab(n_hosts=3) as lab, ExitStack() as stack:

        def peer(i: int, *args: str, catalog: Path | None = None) -> PeerProc:
            return stack.enter_context(
                PeerProc(
                    tmp_path / f"h{i}",
                    args=["--discovery", "mdns", "--listen", f"{lab.hosts[i].addr}:0", *args],
                    prefix=["ip", "netns", "exec", lab.hosts[i].name],
                    catalog=catalog,
                )
            )

        org = peer(0, "--name", "org", catalog=catalog)
        guests = [peer(1), peer(2, "--party", party_key)]
        for p in (org, *guests):
            assert p.ok("wait-peers", count=2, timeout_ms=int(DEADLINE * 1000))
        marks = [g.mark() for g in guests]
        publish = ["catalog", "publish", "--catalog", catalog, "--key", key]
        started = time.monotonic()
        run_cli(*publish, "--state-dir", tmp_path / "h0" / "state", check=True)
        for guest, mark in zip(guests, marks, strict=True):
            guest.wait_event(
                lambda e: e["event"] == "catalog-changed" and e["party_seq"] == 1,
                timeout=DEADLINE,
                since=mark,
            )
        print(f"seq 1 held by both guests {time.monotonic() - started:.2f} s after publish")
        for guest in guests:
            deadline = time.monotonic() + DEADLINE
            while org.peer_id not in guest.ok("get-game", game_id="aurora")["peers"]:
                assert time.monotonic() < deadline, "aurora never listed"
                time.sleep(0.2)
        result = guests[0].ok("download", game_id="aurora", wait=True, timeout=120)
        assert result["installed"] == "install" and list(result["peers"]) == [org.peer_id]

        # seq 2 adds nothing but a name: every peer takes it, the download stays Ready
        data = json.loads(catalog.read_text())
        data["games"][0]["name"] = "Aurora (party edition)"
        catalog.write_text(json.dumps(data))
        marks = [p.mark() for p in (org, *guests)]
        run_cli(*publish, "--state-dir", tmp_path / "h0" / "state", check=True)
        for p, mark in zip((org, *guests), marks, strict=True):
            p.wait_event(
                lambda e: e["event"] == "catalog-changed" and e["party_seq"] == 2,
                timeout=DEADLINE,
                since=mark,
            )
        aurora = guests[0].ok("get-game", game_id="aurora")
        assert aurora["name"] == "Aurora (party edition)" and aurora["availability"] == "ready"
