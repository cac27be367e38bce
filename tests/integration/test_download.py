"""Multi-peer downloads between real peer processes, every chunk verified."""

from __future__ import annotations

import json
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import digest_tree

MiB = 1024 * 1024


@pytest.fixture
def sets(tmp_path: Path, game_sets: GameSets) -> Path:
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=48 * MiB)
    game_sets.create(tmp_path / "b" / "games", "bravo", catalog=catalog, size=48 * MiB)
    return catalog


def test_a_game_held_by_two_comes_from_both_byte_identical(tmp_path: Path, sets: Path) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=sets))
        b = stack.enter_context(PeerProc(tmp_path / "b", args=LOOPBACK, catalog=sets))
        c = stack.enter_context(
            PeerProc(
                tmp_path / "c",
                args=[*LOOPBACK, "--peer", a.control, "--peer", b.control],
                catalog=sets,
            )
        )
        sources_of(c, "borealis", 2)
        result = c.ok("download", game_id="borealis", wait=True, timeout=120)
        assert set(result["peers"]) == {a.peer_id, b.peer_id}
        assert all(n > 0 for n in result["peers"].values()), result["peers"]
        assert sum(result["peers"].values()) >= result["bytes"]
        root = c.games_dir / "borealis"
        assert digest_tree(root) == digest_tree(a.games_dir / "borealis")
        assert (root / "version.ini").read_text().strip() == "2.1.0"
        assert (root / "local").is_dir() and result["installed"] == "install"
        progress = [r for r in c.records if r.get("event") == "download-progress"]
        assert progress and {"bytes", "total", "rate", "eta", "active_peers", "peers"} <= set(
            progress[-1]
        )
        # and now c serves it too
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            games = {g["id"]: g for g in a.ok("list-games")["games"]}
            if c.peer_id in games["borealis"]["peers"]:
                break
            time.sleep(0.1)
        assert c.peer_id in games["borealis"]["peers"]


def test_a_corrupted_chunk_is_fetched_again_from_the_other_source(
    tmp_path: Path, sets: Path
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(
                tmp_path / "a",
                args=LOOPBACK,
                catalog=sets,
                env={"LANSPREAD_FAULT": "serve.corrupt_once"},
            )
        )
        b = stack.enter_context(
            PeerProc(
                tmp_path / "b",
                args=LOOPBACK,
                catalog=sets,
                env={"LANSPREAD_FAULT": "serve.corrupt_once"},
            )
        )
        c = stack.enter_context(
            PeerProc(
                tmp_path / "c",
                args=[*LOOPBACK, "--peer", a.control, "--peer", b.control],
                catalog=sets,
            )
        )
        sources_of(c, "borealis", 2)
        c.ok("download", game_id="borealis", install=False, wait=True, timeout=120)
        rejected = [r for r in c.records if r.get("event") == "download-chunk-rejected"]
        assert len(rejected) >= 1
        assert digest_tree(c.games_dir / "borealis") == digest_tree(a.games_dir / "borealis")
        assert not (c.games_dir / "borealis" / "local").exists()


def test_cancel_discard_removes_the_payload_and_keeps_local(tmp_path: Path, sets: Path) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=sets))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=sets)
        )
        # c has aurora installed but not downloaded (say, from a stream-install)
        mine = c.games_dir / "aurora" / "local"
        mine.mkdir(parents=True)
        (mine / "save.dat").write_bytes(b"progress")
        sources_of(c, "aurora", 1)
        since = c.mark()
        c.send("download", game_id="aurora")
        c.wait_event(lambda e: e["event"] == "download-begin", since=since)
        c.ok("cancel", game_id="aurora", discard=True)
        c.wait_event(lambda e: e["event"] == "download-cancelled", since=since, timeout=20)
        assert sorted(p.name for p in (c.games_dir / "aurora").iterdir()) == ["local"]
        assert (mine / "save.dat").read_bytes() == b"progress"


def _write_catalog(path: Path, **versions: str) -> None:
    data = json.loads(path.read_text())
    for game in data["games"]:
        if game["id"] in versions:
            game["version"] = versions[game["id"]]
    path.write_text(json.dumps(data))


def test_update_fetches_the_newer_catalog_version_and_keeps_user_files(tmp_path: Path) -> None:
    old_cat, new_cat = tmp_path / "old.json", tmp_path / "new.json"
    create_set(tmp_path / "c" / "games", "alpha", catalog=old_cat)
    create_set(tmp_path / "a" / "games", "alpha", catalog=new_cat, size=3 * MiB)
    (tmp_path / "a" / "games" / "aurora" / "version.ini").write_text("2.0\n")
    _write_catalog(new_cat, aurora="2.0")
    with PeerProc(tmp_path / "c", args=LOOPBACK, catalog=old_cat) as c:
        c.ok("install", game_id="aurora", wait=True)
    (tmp_path / "c" / "games" / "aurora" / "local" / "save.dat").write_bytes(b"mine")
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=new_cat))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=new_cat)
        )
        sources_of(c, "aurora", 1)
        result = c.ok("update", game_id="aurora", wait=True, timeout=120)
        assert result["op"] == "download" and result["installed"] == "update"
        root = c.games_dir / "aurora"
        assert (root / "version.ini").read_text().strip() == "2.0"
        assert digest_tree(root) == digest_tree(a.games_dir / "aurora")
        assert (root / "local" / "save.dat").read_bytes() == b"mine"
        c.ok("install", game_id="borealis", wait=True)  # an unrelated game is untouched
