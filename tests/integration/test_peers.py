"""Three real peer processes on loopback, found by static addresses."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.peerproc import PeerProc

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
    # not before the 3 s stale timeout: counted from the last pong, which may
    # be up to a ping interval and a liveness tick (0.75 s) older than the kill
    assert time.monotonic() - killed >= 3 - 0.75 - 0.1
    assert {p["peer_id"] for p in a.ok("peers")["peers"]} == {c.peer_id}


def test_jsonl_operations_and_bad_input(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "p" / "games", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "p", args=FAST, catalog=catalog) as p:
        since = p.mark()
        result = p.ok("install", game_id="aurora", wait=True)
        assert result["op"] == "install" and result["provider"]
        assert (p.games_dir / "aurora" / "local").is_dir()
        begin = p.wait_event(lambda e: e["event"] == "install-begin", since=since)
        assert begin["game_id"] == "aurora"
        busy = p.wait_event(lambda e: e["event"] == "library" and e["active"], since=since)
        assert busy["active"] == [{"game_id": "aurora", "kind": "install"}]
        p.wait_event(lambda e: e["event"] == "install-finished", since=since)
        p.wait_event(
            lambda e: (
                e["event"] == "library"
                and not e["active"]
                and any(g["id"] == "aurora" and g["installed"] for g in e["games"])
            ),
            since=since,
        )
        error = p.call("install", game_id="aurora", wait=True)
        assert error["kind"] == "error" and "already installed" in error["error"]
        assert p.call("install", game_id="../etc")["kind"] == "error"
        assert "unknown command" in p.call("frobnicate")["error"]
        p.write_raw(b"this is not json\n")
        p.write_raw(b"[1, 2]\n")
        p.write_raw(b'{"cmd": "wait-peers", "count": "two"}\n')
        assert p.ok("uninstall", game_id="aurora", wait=True)["op"] == "uninstall"
        assert p.ok("status")["peer_id"] == p.peer_id
        errors = [r for r in p.records if r["kind"] == "error" and r.get("id") is None]
        assert len(errors) == 3
