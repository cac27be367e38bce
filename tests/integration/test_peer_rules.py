"""Rules of the design that had no test, each against real peer processes:
a peer that moves, a peer that speaks another protocol version, sources
filtered by the catalog's version, stream-install and an installed game,
rollback of a stream-install into a folder that was there before,
set-game-dir, fetch, and the words for a game installed without archives."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from lanspread_core.control.client import ControlPool
from lanspread_core.control.errors import PeerError
from lanspread_core.control.identity import load_or_create_identity
from lanspread_core.control.server import Remote, serve_control
from lanspread_core.library.statedir import StateDir
from lanspread_core.wire.messages import PROTO_VER, Hello, HelloAck, Message
from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.data import TEST_PEER_ID, fixed_identity
from support.peerproc import LOOPBACK, PeerProc, sources_of

#: a stale timeout long enough that a restarted peer is an update, not a new one
PATIENT = [*LOOPBACK, "--stale-timeout", "30"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def test_a_peer_that_moves_keeps_its_entry(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "guest", args=PATIENT) as guest:
        args = [*LOOPBACK, "--peer", guest.control]
        seed = PeerProc(tmp_path / "seed", args=args)
        try:
            guest.ok("wait-peers", count=1, timeout_ms=10_000)
            old = seed.control
            os.killpg(seed.proc.pid, signal.SIGKILL)  # no Goodbye: it just moves
            seed.proc.wait(10)
        finally:
            seed.__exit__()
        since = guest.mark()
        with PeerProc(tmp_path / "seed", args=args) as moved:
            assert moved.peer_id == seed.peer_id and moved.control != old
            guest.wait_event(lambda e: e["event"] == "peer-library", since=since)
            (entry,) = guest.ok("peers")["peers"]
            assert entry["peer_id"] == seed.peer_id and entry["addr"] == moved.control
            joined = [r for r in guest.records[since:] if r.get("event") == "peer-joined"]
            assert joined == []  # the same peer at a new address, not a second one


@asynccontextmanager
async def old_peer(tmp_path: Path, answer: Message) -> AsyncIterator[str]:
    """A control server that answers every Hello with ``answer``, under the
    peer id its own key proves: an old lanspread."""
    identity = load_or_create_identity(StateDir(tmp_path / "old"))
    answer = dataclasses.replace(answer, peer_id=identity.peer_id)

    async def handle(request: Message, remote: Remote) -> Message:
        return answer

    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(serve_control, "127.0.0.1", 0, identity, handle)
        yield f"127.0.0.1:{endpoint.port}"
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_a_peer_of_another_protocol_version_is_refused_both_ways(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        # it greets us with a newer protocol: refused, with why, and not registered
        host, port = peer.control.rsplit(":", 1)
        newer = Hello(TEST_PEER_ID, PROTO_VER + 1, 0, "", (), 1, "newer", 1)
        pool = ControlPool(identity=fixed_identity())
        try:
            with pytest.raises(PeerError) as refused:
                await pool.request(host, int(port), newer, timeout=10)
        finally:
            await pool.aclose()
        assert refused.value.code == "proto_ver"
        assert f"it speaks protocol {PROTO_VER} and the caller {PROTO_VER + 1}" in str(
            refused.value
        )
        assert "same lanspread version" in str(refused.value)
        # we greet a peer that answers with an older protocol: refused too
        older = HelloAck("f" * 32, PROTO_VER - 1, 0, "", (), 1, "older", 1)
        async with old_peer(tmp_path, older) as addr:
            record = await anyio.to_thread.run_sync(lambda: peer.call("connect", addr=addr))
        assert record["kind"] == "error"
        assert f"speaks protocol {PROTO_VER - 1} and this peer {PROTO_VER}" in record["error"]
        assert await anyio.to_thread.run_sync(lambda: peer.ok("peers")["peers"]) == []


def _catalog_with(path: Path, source: Path, game: str, version: str) -> None:
    data = json.loads(source.read_text())
    for entry in data["games"]:
        if entry["id"] == game:
            entry["version"] = version
            entry.pop("hashes", None)
    path.write_text(json.dumps(data))


def test_sources_are_the_peers_at_the_catalog_version_only(tmp_path: Path) -> None:
    old_catalog, new_catalog = tmp_path / "old.json", tmp_path / "new.json"
    create_set(tmp_path / "old" / "games", "bravo", catalog=old_catalog)
    held = json.loads(old_catalog.read_text())
    old_version = next(g["version"] for g in held["games"] if g["id"] == "ember")
    _catalog_with(new_catalog, old_catalog, "ember", "9.9")
    # the same archives, released again as 9.9
    shutil.copytree(tmp_path / "old" / "games", tmp_path / "new" / "games")
    (tmp_path / "new" / "games" / "ember" / "version.ini").write_text("9.9\n")
    with (
        PeerProc(tmp_path / "old", args=[*LOOPBACK, "--name", "old"], catalog=old_catalog) as old,
        PeerProc(tmp_path / "new", args=[*LOOPBACK, "--name", "new"], catalog=new_catalog) as new,
    ):
        args = [*LOOPBACK, "--peer", old.control, "--peer", new.control]
        with PeerProc(tmp_path / "guest", args=args, catalog=new_catalog) as guest:
            sources_of(guest, "cascade", 2)  # both libraries are here
            entry = guest.ok("get-game", game_id="ember")
            assert entry["catalog_version"] == "9.9" and entry["peers"] == [new.peer_id]
            result = guest.ok("download", game_id="ember", install=False, wait=True)
            assert set(result["peers"]) == {new.peer_id}
            sources = guest.wait_event(lambda e: e["event"] == "download-sources")
            assert sources["sources"] == [new.peer_id] and sources["version"] == "9.9"
            assert (guest.games_dir / "ember" / "version.ini").read_text().strip() == "9.9"
    assert old_version != "9.9"


def test_an_installed_game_refuses_a_stream_install(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    create_set(tmp_path / "guest" / "games", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "seed", args=LOOPBACK, catalog=catalog) as seed:
        args = [*LOOPBACK, "--peer", seed.control]
        with PeerProc(tmp_path / "guest", args=args, catalog=catalog) as guest:
            guest.ok("install", game_id="aurora", wait=True)
            local = guest.games_dir / "aurora" / "local"
            before = sorted(p.relative_to(local) for p in local.rglob("*"))
            sources_of(guest, "aurora", 1)
            record = guest.call("stream-install", game_id="aurora", wait=True)
            assert record["kind"] == "error"
            assert record["error"] == "aurora is already installed; uninstall it first"
            assert sorted(p.relative_to(local) for p in local.rglob("*")) == before


def test_a_failed_stream_install_keeps_a_game_folder_that_was_there(tmp_path: Path) -> None:
    """The seed's provider cannot read the archives, so every attempt fails and
    is rolled back: a folder the guest had before stays, with what was in it;
    one the attempt made goes."""
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    seed_args = [*LOOPBACK, "--provider", "fixture"]
    with PeerProc(tmp_path / "seed", args=seed_args, catalog=catalog) as seed:
        mine = tmp_path / "guest" / "games" / "aurora"
        mine.mkdir(parents=True)
        (mine / "notes.txt").write_text("my notes\n")
        args = [*LOOPBACK, "--peer", seed.control]
        with PeerProc(tmp_path / "guest", args=args, catalog=catalog) as guest:
            sources_of(guest, "borealis", 1)
            for game in ("aurora", "borealis"):
                record = guest.call("stream-install", game_id=game, wait=True, timeout=60)
                assert record["kind"] == "error"
                assert record["error"].startswith(f"no peer could stream {game}:")
            assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]
            assert (mine / "notes.txt").read_text() == "my notes\n"
            assert not (guest.games_dir / "borealis").exists()


def test_set_game_dir_switches_and_refuses_what_it_cannot_use(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "peer" / "games", "alpha", catalog=catalog)
    create_set(tmp_path / "other", "charlie", catalog=catalog)
    (tmp_path / "a-file").write_text("x")
    with PeerProc(tmp_path / "peer", args=LOOPBACK, catalog=catalog) as peer:
        home = str(peer.games_dir)
        for path, says in (
            (str(tmp_path / "a-file"), "is a file; the games dir is a folder of game folders"),
            ("relative/games", "set-game-dir needs an absolute path"),
        ):
            record = peer.call("set-game-dir", path=path)
            assert record["kind"] == "error" and says in record["error"], record
            assert "internal error" not in record["error"]
        # refused without harm: still the old games dir, still watched
        assert peer.ok("status")["games_dir"] == home
        shutil.copytree(tmp_path / "other" / "dunes", peer.games_dir / "dunes")
        peer.wait_event(
            lambda e: e["event"] == "library" and "dunes" in [g["id"] for g in e["games"]],
            timeout=15,
        )
        # a real switch: the other folder's games, and back
        assert peer.ok("set-game-dir", path=str(tmp_path / "other"))["games_dir"] == str(
            tmp_path / "other"
        )
        assert {g["id"] for g in peer.ok("list-games")["games"]} == {"cascade", "dunes"}
        peer.ok("set-game-dir", path=home)
        assert {g["id"] for g in peer.ok("list-games")["games"]} == {"aurora", "borealis", "dunes"}
    assert "Traceback" not in peer.stderr()


def test_fetch_answers_once_the_libraries_are_here(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    with (
        PeerProc(tmp_path / "seed", args=LOOPBACK, catalog=catalog) as seed,
        PeerProc(tmp_path / "guest", args=LOOPBACK, catalog=catalog) as guest,
    ):
        guest.ok("connect", addr=seed.control)
        assert guest.ok("fetch") == {"peers": 1}
        games = {g["id"]: g for g in guest.ok("list-games")["games"]}
        assert games["aurora"]["peers"] == [seed.peer_id]
        assert games["borealis"]["peers"] == [seed.peer_id]


def test_a_stream_installed_game_is_installed_not_shareable(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "seed", args=LOOPBACK, catalog=catalog) as seed:
        args = [*LOOPBACK, "--peer", seed.control]
        with PeerProc(tmp_path / "guest", args=args, catalog=catalog) as guest:
            sources_of(guest, "aurora", 1)
            guest.ok("stream-install", game_id="aurora", wait=True)
            entry = guest.wait_event(
                lambda e: (
                    e["event"] == "library"
                    and any(g["id"] == "aurora" and g["installed"] for g in e["games"])
                )
            )
            (aurora,) = [g for g in entry["games"] if g["id"] == "aurora"]
            assert aurora["availability"] == "local_only" and not aurora["downloaded"]
            proc = run_cli("games", "--state-dir", tmp_path / "guest" / "state")
            assert proc.returncode == 0, proc.stderr
            line = next(x for x in proc.stdout.splitlines() if x.startswith("aurora "))
            assert line.endswith("yes        Installed, not shareable"), line
            # and it is not served: the seed does not list the guest as a holder
            assert guest.peer_id not in seed.ok("get-game", game_id="aurora")["peers"]
