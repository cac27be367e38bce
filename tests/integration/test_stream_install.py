"""Stream-installs between real peer processes: one pass from a peer's archives into local/."""

from __future__ import annotations

import json
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_core.library.layout import root_archives
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import build_provider
from lanspread_fixture.gamesets import create_set
from support.data import RAR_FIXTURES, expected_rar
from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import tree

EXPECTED = expected_rar()
REGISTRY = load_registry()
EVIL = "rar5-evil-symlink-traversal.rar"


def rar_game_id(name: str) -> str:
    return "rar-" + name.split(".")[0]


def make_games(games: Path, catalog: Path) -> list[str]:
    """Fixture games (RAR and fixture format) plus one game per shared RAR archive."""
    ids = create_set(games, "alpha", catalog=catalog)
    ids += create_set(games / ".." / "fx", "charlie", catalog=catalog, fmt="fixture")
    for gid in ("cascade", "dunes"):
        shutil.move(games / ".." / "fx" / gid, games / f"fx-{gid}")
    data = json.loads(catalog.read_text())
    for gid in ("cascade", "dunes"):
        entry = next(g for g in data["games"] if g["id"] == gid)
        data["games"].append({**entry, "id": f"fx-{gid}"})
    ids = [i for i in ids if i not in ("cascade", "dunes")] + ["fx-cascade", "fx-dunes"]
    for name, exp in EXPECTED.items():
        gid = rar_game_id(name)
        root = games / gid
        root.mkdir()
        for vol in exp["volumes"]:
            shutil.copy(RAR_FIXTURES / vol, root / vol.replace(".rar", ".eti"))
        (root / "version.ini").write_text("1\n")
        data["games"].append({"id": gid, "name": name, "version": "1"})
        ids.append(gid)
    catalog.write_text(json.dumps(data))
    return ids


@pytest.mark.parametrize("provider", ["unrar", "libarchive", "fixture"])
def test_streamed_installs_equal_local_installs(tmp_path: Path, provider: str) -> None:
    catalog = tmp_path / "catalog.json"
    ids = make_games(tmp_path / "a" / "games", catalog)
    impl = build_provider(REGISTRY, provider)
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(tmp_path / "a", args=[*LOOPBACK, "--provider", provider], catalog=catalog)
        )
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        sources_of(c, "aurora", 1)
        streamed = 0
        for gid in ids:
            sources_of(c, gid, 1)
            archives = root_archives(a.games_dir / gid)
            reply = c.call("stream-install", game_id=gid, wait=True, timeout=60)
            root = c.games_dir / gid
            if not impl.probe(archives).ok or gid == rar_game_id(EVIL):
                assert reply["kind"] == "error", (gid, reply)
                assert len(reply["error"].splitlines()) == 1
                assert not root.exists(), f"{gid} left {list(root.iterdir())}"
                continue
            assert reply["kind"] == "result", (gid, reply)
            local = tmp_path / "local" / provider / gid
            impl.unpack(archives, local)
            assert tree(root / "local") == tree(local), gid
            assert sorted(p.name for p in root.iterdir()) == ["local"]  # no archives, no sentinel
            streamed += 1
        assert streamed >= (2 if provider == "fixture" else 8)
        if provider != "fixture":
            assert (c.games_dir / rar_game_id("rar3-solid.rar") / "local").exists() == (
                provider == "unrar"
            )
            assert (c.games_dir / rar_game_id("rar5-solid.rar") / "local").is_dir()
            assert (c.games_dir / rar_game_id("rar5-vols.part1.rar") / "local").is_dir()
        # nothing of the evil archive anywhere near the receiver
        assert not list(tmp_path.glob("c/**/pwned.txt"))
        listing = {g["id"]: g for g in c.ok("list-games")["games"]}
        assert listing["aurora"]["availability"] == "local_only" or provider == "fixture"
        assert not set(c.ok("status")["serving"])  # stream-installed games are never served


def test_local_only_is_not_served_to_others(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "a" / "games", "alpha", catalog=catalog)
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK, catalog=catalog))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        sources_of(c, "aurora", 1)
        c.ok("stream-install", game_id="aurora", wait=True)
        d = stack.enter_context(
            PeerProc(
                tmp_path / "d",
                args=[*LOOPBACK, "--peer", c.control, "--peer", a.control],
                catalog=catalog,
            )
        )
        d.ok("wait-peers", count=2, timeout_ms=10_000)
        sources_of(d, "aurora", 1)
        time.sleep(1)
        holders = {g["id"]: g["peers"] for g in d.ok("list-games")["games"]}
        assert holders["aurora"] == [a.peer_id]
        assert c.ok("get-game", game_id="aurora")["availability"] == "local_only"


@pytest.mark.parametrize("switch", ["stream.corrupt_once", "stream.truncate_once"])
def test_a_bad_stream_leaves_nothing_and_a_second_peer_completes(
    tmp_path: Path, game_sets: GameSets, switch: str
):
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=4 << 20)
    game_sets.create(tmp_path / "b" / "games", "alpha", catalog=catalog, size=4 << 20)
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(
                tmp_path / "a", args=LOOPBACK, catalog=catalog, env={"LANSPREAD_FAULT": switch}
            )
        )
        b = stack.enter_context(PeerProc(tmp_path / "b", args=LOOPBACK, catalog=catalog))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        sources_of(c, "aurora", 1)
        failed = c.call("stream-install", game_id="aurora", wait=True, timeout=60)
        assert failed["kind"] == "error" and len(failed["error"].splitlines()) == 1
        assert not (c.games_dir / "aurora").exists()
        c.ok("connect", addr=b.control)
        sources_of(c, "aurora", 2)
        result = c.ok("stream-install", game_id="aurora", wait=True, timeout=60)
        assert result["files"] > 0
        local = tmp_path / "ref"
        build_provider(REGISTRY, "unrar").unpack(root_archives(b.games_dir / "aurora"), local)
        assert tree(c.games_dir / "aurora" / "local") == tree(local)
