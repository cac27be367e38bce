"""Three real peer processes on loopback, found by static addresses."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from peerproc import PeerProc

FAST = [
    "--ping-interval",
    "0.5",
    "--stale-timeout",
    "3",
    "--listen",
    "127.0.0.1:0",
    "--discovery",
    "static",
]


@pytest.fixture
def trio(tmp_path: Path) -> Iterator[tuple[PeerProc, PeerProc, PeerProc]]:
    catalog = tmp_path / "catalog.json"
    for name, games in (("a", "alpha"), ("b", "bravo"), ("c", "charlie")):
        create_set(tmp_path / name / "games", games, catalog=catalog)
    spare = tmp_path / "spare"
    create_set(spare, "charlie", catalog=catalog)
    a = PeerProc(tmp_path / "a", args=FAST, catalog=catalog)
    b = PeerProc(tmp_path / "b", args=[*FAST, "--peer", a.control], catalog=catalog)
    c = PeerProc(
        tmp_path / "c", args=[*FAST, "--peer", a.control, "--peer", b.control], catalog=catalog
    )
    try:
        yield a, b, c
    finally:
        for p in (a, b, c):
            p.__exit__()


def _holders(peer: PeerProc, game: str) -> set[str]:
    games = {g["id"]: g for g in peer.ok("list-games")["games"]}
    return set(games[game]["peers"]) if game in games else set()


def test_three_peers_see_each_others_libraries(trio) -> None:
    a, b, c = trio
    for p in trio:
        assert p.ok("wait-peers", count=2, timeout_ms=10_000)["peers"] == 2
    # give library syncs a moment after the handshakes
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if (
            _holders(c, "borealis") == {a.peer_id, b.peer_id}
            and _holders(a, "dunes") == {c.peer_id}
            and _holders(b, "aurora") == {a.peer_id}
        ):
            break
        time.sleep(0.1)
    assert _holders(c, "borealis") == {a.peer_id, b.peer_id}
    assert _holders(a, "cascade") == {b.peer_id, c.peer_id}
    assert _holders(a, "dunes") == {c.peer_id}
    assert _holders(b, "aurora") == {a.peer_id}
    listing = {g["id"]: g for g in a.ok("list-games")["games"]}
    assert listing["dunes"]["availability"] == "remote"
    assert listing["aurora"]["availability"] == "ready"
    peers = {p["peer_id"] for p in a.ok("peers")["peers"]}
    assert peers == {b.peer_id, c.peer_id}


def test_a_new_game_reaches_the_others_as_a_delta(trio, tmp_path: Path) -> None:
    a, b, c = trio
    for p in trio:
        p.ok("wait-peers", count=2, timeout_ms=10_000)
    b.wait_event(lambda e: e["event"] == "peer-library" and e["peer_id"] == a.peer_id)
    since_b, since_c = b.mark(), c.mark()
    # dunes arrives on a: archives first, the version.ini sentinel last
    root = a.games_dir / "dunes"
    shutil.copytree(
        tmp_path / "spare" / "dunes", root, ignore=shutil.ignore_patterns("version.ini")
    )
    shutil.copy(tmp_path / "spare" / "dunes" / "version.ini", root / "version.ini")
    for p, since in ((b, since_b), (c, since_c)):
        event = p.wait_event(
            lambda e: (
                e["event"] == "peer-library" and e["peer_id"] == a.peer_id and "dunes" in e["games"]
            ),
            timeout=2,
            since=since,
        )
        assert event["via"] == "delta"


def test_goodbye_removes_a_peer_at_once(trio) -> None:
    a, b, c = trio
    for p in trio:
        p.ok("wait-peers", count=2, timeout_ms=10_000)
    since = a.mark()
    took = c.shutdown()
    assert took < 2.0, "a peer must stop within 2 s"
    event = a.wait_event(lambda e: e["event"] == "peer-left", timeout=1, since=since)
    assert event == {**event, "peer_id": c.peer_id, "reason": "goodbye"}


def test_a_killed_peer_is_removed_after_the_stale_timeout(trio) -> None:
    a, b, c = trio
    for p in trio:
        p.ok("wait-peers", count=2, timeout_ms=10_000)
    since = a.mark()
    b.kill()
    killed = time.monotonic()
    event = a.wait_event(lambda e: e["event"] == "peer-left", timeout=10, since=since)
    assert event["peer_id"] == b.peer_id and event["reason"] == "stale"
    assert time.monotonic() - killed >= 2.5  # not before the 3 s stale timeout
    assert {p["peer_id"] for p in a.ok("peers")["peers"]} == {c.peer_id}
