"""Multi-peer downloads in the LAN lab: sources killed or busy mid-download."""

from __future__ import annotations

from pathlib import Path

import pytest

from support.gamesets import GameSets
from support.labpeers import lab_peers
from support.peerproc import sources_of
from support.trees import digest_tree

pytestmark = pytest.mark.needs("netns")

MiB = 1024 * 1024


def _lab_sets(tmp_path: Path, game_sets: GameSets, *names: str) -> Path:
    catalog = tmp_path / "catalog.json"
    for i, name in enumerate(names):
        if name:
            game_sets.create(tmp_path / f"h{i}" / "games", name, catalog=catalog, size=24 * MiB)
    return catalog


def test_a_source_killed_mid_download_leaves_the_rest_to_the_other(
    tmp_path: Path, game_sets: GameSets
) -> None:
    catalog = _lab_sets(tmp_path, game_sets, "alpha", "bravo", "")
    with lab_peers(tmp_path, catalog, "100mbit", 3) as (a, b, c):
        sources_of(c, "borealis", 2)
        since = c.mark()
        c.send("download", game_id="borealis", install=False)
        c.wait_event(lambda e: e["event"] == "download-progress" and e["bytes"] > 0, since=since)
        a.kill()
        done = c.wait_event(
            lambda e: e["event"] in ("download-finished", "download-failed"),
            since=since,
            timeout=60,
        )
        assert done["event"] == "download-finished", done
        assert digest_tree(c.games_dir / "borealis") == digest_tree(b.games_dir / "borealis")


def test_the_only_source_killed_ends_with_all_peers_gone_and_no_sentinel(
    tmp_path: Path, game_sets: GameSets
) -> None:
    catalog = _lab_sets(tmp_path, game_sets, "alpha", "")
    with lab_peers(tmp_path, catalog, "100mbit", 2) as (a, c):
        sources_of(c, "aurora", 1)
        since = c.mark()
        c.send("download", game_id="aurora")
        c.wait_event(lambda e: e["event"] == "download-progress" and e["bytes"] > 0, since=since)
        a.kill()
        gone = c.wait_event(
            lambda e: e["event"] == "download-all-peers-gone", since=since, timeout=60
        )
        c.ok("status")  # every event up to now has been written
        endings = [
            r["event"]
            for r in c.records[since:]
            if r.get("kind") == "event"
            and r["event"].startswith("download-")
            and r["event"].endswith(("-finished", "-failed", "-cancelled", "-all-peers-gone"))
        ]
        assert endings == ["download-all-peers-gone"], "one operation, one ending"
        assert "every peer serving aurora is gone" in gone["error"]
        assert not (c.games_dir / "aurora" / "version.ini").exists()
        # what verified is kept for a resume, and the game says how far it got
        entry = c.ok("get-game", game_id="aurora")
        assert 0 < entry["paused"]["bytes"] < entry["paused"]["total"]


def test_an_update_on_the_serving_peer_cancels_its_transfer(
    tmp_path: Path, game_sets: GameSets
) -> None:
    catalog = _lab_sets(tmp_path, game_sets, "alpha", "")
    with lab_peers(tmp_path, catalog, "100mbit", 2) as (a, c):
        a.ok("install", game_id="aurora", wait=True)
        sources_of(c, "aurora", 1)
        since, a_since = c.mark(), a.mark()
        c.send("download", game_id="aurora")
        a.wait_event(
            lambda e: e["event"] == "outbound-transfers" and e["count"] > 0,
            since=a_since,
            timeout=20,
        )
        a.ok("update", game_id="aurora", wait=True, timeout=60)
        a.wait_event(
            lambda e: e["event"] == "outbound-transfers" and e["count"] == 0, since=a_since
        )
        done = c.wait_event(
            lambda e: e["event"] in ("download-finished", "download-failed"),
            since=since,
            timeout=60,
        )
        if done["event"] == "download-failed":
            assert not (c.games_dir / "aurora" / "version.ini").exists()
        else:  # it may carry on once the game is served again
            assert digest_tree(c.games_dir / "aurora") == digest_tree(a.games_dir / "aurora")
