"""Stream-installs in the LAN lab: a sender killed, a receiver cancelling, mid-stream."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from support.gamesets import GameSets
from support.labpeers import lab_peers
from support.peerproc import PeerProc, sources_of

pytestmark = pytest.mark.needs("netns")


def _sender(a: PeerProc, b: PeerProc, since_a: int, since_b: int) -> PeerProc:
    """Whichever of ``a`` and ``b`` is streaming now."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        for peer, since in ((a, since_a), (b, since_b)):
            if any(
                r.get("event") == "outbound-transfers" and r["count"] > 0
                for r in peer.records[since:]
            ):
                return peer
        time.sleep(0.02)
    raise AssertionError("nobody started streaming")


def test_a_sender_killed_mid_stream_hands_over_to_the_other(
    tmp_path: Path, game_sets: GameSets
) -> None:
    catalog = tmp_path / "catalog.json"
    for i in range(2):
        game_sets.create(tmp_path / f"h{i}" / "games", "alpha", catalog=catalog, size=24 << 20)
    with lab_peers(tmp_path, catalog, "100mbit", 3) as (a, b, c):
        sources_of(c, "aurora", 2)
        since, since_a, since_b = c.mark(), a.mark(), b.mark()
        c.send("stream-install", game_id="aurora", wait=True)
        victim = _sender(a, b, since_a, since_b)
        c.wait_event(
            lambda e: e["event"] == "stream-install-progress" and e["bytes"] > 0, since=since
        )
        victim.kill()
        c.wait_event(lambda e: e["event"] == "stream-install-retry", since=since, timeout=60)
        done = c.wait_event(
            lambda e: e["event"] in ("stream-install-finished", "stream-install-failed"),
            since=since,
            timeout=90,
        )
        assert done["event"] == "stream-install-finished", done
        root = c.games_dir / "aurora"
        assert sorted(p.name for p in root.iterdir()) == ["local"]


def test_a_receiver_cancelling_mid_stream_leaves_nothing(
    tmp_path: Path, game_sets: GameSets
) -> None:
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "h0" / "games", "alpha", catalog=catalog, size=24 << 20)
    with lab_peers(tmp_path, catalog, "100mbit", 2) as (a, c):
        sources_of(c, "aurora", 1)
        since, since_a = c.mark(), a.mark()
        c.send("stream-install", game_id="aurora")
        c.wait_event(
            lambda e: e["event"] == "stream-install-progress" and e["bytes"] > 0, since=since
        )
        c.ok("cancel", game_id="aurora")
        c.wait_event(lambda e: e["event"] == "stream-install-cancelled", since=since, timeout=30)
        assert not (c.games_dir / "aurora").exists()
        # the sender noticed and released its outbound transfer
        a.wait_event(
            lambda e: e["event"] == "outbound-transfers" and e["count"] == 0,
            since=since_a,
            timeout=30,
        )
