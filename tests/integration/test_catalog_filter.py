"""A peer keeps only the games its own catalog names from another peer's library."""

from __future__ import annotations

import json
from pathlib import Path

from lanspread_fixture.gamesets import create_set
from support.peerproc import LOOPBACK, PeerProc


def test_games_the_local_catalog_does_not_name_are_not_kept(tmp_path: Path) -> None:
    seed_catalog = tmp_path / "seed-catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=seed_catalog)
    guest_catalog = tmp_path / "guest-catalog.json"
    games = json.loads(seed_catalog.read_text())["games"]
    guest_catalog.write_text(json.dumps({"games": [g for g in games if g["id"] == "aurora"]}))
    with PeerProc(tmp_path / "guest", args=LOOPBACK, catalog=guest_catalog) as guest:
        args = [*LOOPBACK, "--peer", guest.control]
        with PeerProc(tmp_path / "seed", args=args, catalog=seed_catalog) as seed:
            listed = guest.wait_event(
                lambda e: e["event"] == "peer-library" and e["peer_id"] == seed.peer_id
            )
            assert listed["games"] == ["aurora"]
            peers = guest.ok("peers")["peers"]
            assert [p["games"] for p in peers] == [["aurora"]]
            ids = {g["id"] for g in guest.ok("list-games")["games"]}
            assert "borealis" not in ids
