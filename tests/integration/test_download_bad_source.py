"""A download whose remaining sources sent bad data ends soon, naming them."""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of

MiB = 1024 * 1024
#: the correctness bound: a stalled download must end within this after the bad chunk
ENDS_WITHIN = 8.0
CORRUPT = {"LANSPREAD_FAULT": "serve.corrupt_once"}


@pytest.fixture
def sets(tmp_path: Path, game_sets: GameSets) -> Path:
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=48 * MiB)
    game_sets.create(tmp_path / "b" / "games", "alpha", catalog=catalog, size=48 * MiB)
    return catalog


def _ending(c: PeerProc, since: int) -> tuple[dict[str, object], float]:
    """The download's ending event and how long after the rejected chunk it came."""
    rejected = c.wait_event(
        lambda e: e["event"] == "download-chunk-rejected", since=since, timeout=60
    )
    seen = time.monotonic()
    end = c.wait_event(
        lambda e: (
            e["event"]
            in (
                "download-all-peers-gone",
                "download-failed",
                "download-finished",
                "download-cancelled",
            )
        ),
        since=since,
        timeout=60,
    )
    assert rejected["peer_id"]
    return end, time.monotonic() - seen


def test_the_only_source_sending_a_corrupt_chunk_ends_the_download_naming_it(
    tmp_path: Path, sets: Path
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=sets, env=CORRUPT))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=sets)
        )
        sources_of(c, "borealis", 1)
        since = c.mark()
        c.send("download", game_id="borealis", install=False)
        end, after = _ending(c, since)
        assert end["event"] == "download-all-peers-gone", end
        assert after < ENDS_WITHIN, f"the download ended {after:.1f} s after the bad chunk"
        error = str(end["error"])
        assert a.peer_id[:8] in error and "corrupt chunk" in error, error
        # the verified chunks stay for a resume: the game is paused, not gone
        game = c.ok("get-game", game_id="borealis")
        assert game["paused"] and game["paused"]["bytes"] > 0, game
