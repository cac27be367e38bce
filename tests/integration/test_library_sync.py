"""Library sync between real peer processes: a peer that restarts unchanged is
known again by its digest, without a snapshot."""

from __future__ import annotations

from pathlib import Path

from lanspread_fixture.gamesets import create_set
from support.peerproc import LOOPBACK, PeerProc


def test_a_peer_restarting_with_the_same_library_is_not_fetched_again(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "guest", args=LOOPBACK, catalog=catalog) as guest:
        args = [*LOOPBACK, "--peer", guest.control]
        with PeerProc(tmp_path / "seed", args=args, catalog=catalog) as seed:
            first = guest.wait_event(
                lambda e: e["event"] == "peer-library" and e["peer_id"] == seed.peer_id
            )
            assert first["via"] == "snapshot" and first["games"] == ["aurora", "borealis"]
            since = guest.mark()
            seed.shutdown()
        guest.wait_event(lambda e: e["event"] == "peer-left", since=since)
        since = guest.mark()
        with PeerProc(tmp_path / "seed", args=args, catalog=catalog) as again:
            assert again.peer_id == seed.peer_id
            back = guest.wait_event(
                lambda e: e["event"] == "peer-library" and e["peer_id"] == seed.peer_id,
                since=since,
            )
            assert back["via"] == "digest" and back["games"] == ["aurora", "borealis"]
            games = {g["id"]: g for g in guest.ok("list-games")["games"]}
            assert games["aurora"]["peers"] == [seed.peer_id]
