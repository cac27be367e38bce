"""The download engine in one process: real data-plane servers, a fake peer view.

``Download`` sees the peers only through ``PeerAccess``, so these tests give it
a small fake that answers ``GetGame`` and ``OpenTransfer`` from real token
tables, while the bytes travel over real TCP connections from real
``serve_data`` servers on loopback: no QUIC, no runtime, no subprocess.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import pytest

from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.events import ChunkRejected, DownloadSources, Event, OpProgress
from lanspread_core.library.manifest import Manifest, build_manifest, chunk_ranges
from lanspread_core.transfer import resume
from lanspread_core.transfer.download import Download, DownloadJob
from lanspread_core.transfer.sources import (
    AllSourcesGone,
    DownloadError,
    Source,
    choose_manifest,
)
from lanspread_core.wire.messages import (
    Error,
    GameInfo,
    GameManifest,
    GetGame,
    Message,
    OpenTransfer,
    TransferGrant,
)

GAME = "aurora"
CHUNK = 64 * 1024
SELF = "c" * 32


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_root(root: Path, seed: int = 1) -> Manifest:
    """A downloaded game root: two archives of pseudo-random bytes and version.ini."""
    root.mkdir(parents=True)
    rnd = hashlib.sha256(str(seed).encode()).digest()
    (root / "game.eti").write_bytes(rnd * (40 * CHUNK // 32 + 7))
    (root / "game2.eti").write_bytes(rnd[::-1] * (3 * CHUNK // 32))
    (root / "version.ini").write_text("1.0\n")
    return build_manifest(root, chunk_size=CHUNK)


@dataclass
class FakeSource:
    peer_id: str
    host: str = "127.0.0.1"
    name: str = ""
    games: dict[str, GameInfo] = field(default_factory=dict)


@dataclass
class Seed:
    """One source: a game root served by a real data-plane server."""

    source: FakeSource
    root: Path
    manifest: Manifest
    tokens: TransferTokens = field(default_factory=TransferTokens)
    port: int = 0
    granted: int = 0


class FakePeers:
    """``PeerAccess`` over :class:`Seed` objects; no control plane at all."""

    def __init__(self, seeds: list[Seed]) -> None:
        self.seeds = {s.source.peer_id: s for s in seeds}
        self.present = set(self.seeds)
        for seed in seeds:  # each holds the whole game, as it lists it
            m = seed.manifest
            seed.source.games[GAME] = GameInfo(GAME, "1.0", m.total_size, m.manifest_hash)

    @property
    def self_id(self) -> str:
        return SELF

    def holders(self, game_id: str, version: str, *, partial: bool = False) -> list[Source]:
        return [s.source for s in self.seeds.values() if s.source.peer_id in self.present]

    def is_present(self, peer_id: str) -> bool:
        return peer_id in self.present

    def known(self) -> list[Source]:
        return [s.source for s in self.seeds.values() if s.source.peer_id in self.present]

    async def request(self, peer: Source, message: Message, timeout: float) -> Message:
        seed = self.seeds[peer.peer_id]
        if isinstance(message, GetGame):
            return GameManifest(GAME, "1.0", seed.manifest.to_json())
        if isinstance(message, OpenTransfer):
            seed.granted += 1
            token = seed.tokens.issue(GAME, message.peer_id, message.ranges)
            return TransferGrant(token, seed.port, 30.0)
        return Error.of("unsupported", type(message).__name__)


@asynccontextmanager
async def serving(seeds: list[Seed]) -> AsyncIterator[None]:
    async with AsyncExitStack() as stack:
        tg = await stack.enter_async_context(anyio.create_task_group())
        for seed in seeds:

            def resolve(grant: Grant, root: Path = seed.root) -> Path:
                return root

            endpoint = await tg.start(
                lambda task_status, s=seed, r=resolve: serve_data(
                    "127.0.0.1", 0, s.tokens, r, OutboundTransfers(), task_status=task_status
                )
            )
            seed.port = endpoint.port
        yield
        tg.cancel_scope.cancel()


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


async def download(
    games: Path, peers: FakePeers, events: list[Event], record: Path | None = None
) -> dict:
    games.mkdir(exist_ok=True)  # the runtime creates the games dir at start
    job = DownloadJob(GAME, "1.0", install=False, record=record)
    return await Download(job, games, peers, events.append).run()


@pytest.mark.anyio
async def test_two_sources_each_deliver_and_the_tree_is_byte_identical(tmp_path: Path) -> None:
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / GAME, make_root(tmp_path / "a" / GAME))
    b = Seed(FakeSource("b" * 32), tmp_path / "b" / GAME, make_root(tmp_path / "b" / GAME))
    events: list[Event] = []
    async with serving([a, b]):
        result = await download(tmp_path / "games", FakePeers([a, b]), events)
    assert tree(tmp_path / "games" / GAME) == tree(a.root)
    assert result["bytes"] == result["total"] == a.manifest.total_size
    assert set(result["peers"]) == {a.source.peer_id, b.source.peer_id}
    assert all(n > 0 for n in result["peers"].values()), result["peers"]
    # verified bytes by source add up to the game; end-game copies are counted apart
    assert sum(result["peers"].values()) == result["bytes"]
    assert a.granted and b.granted
    sources = [e for e in events if isinstance(e, DownloadSources)]
    assert [len(e.sources) for e in sources] == [2]
    progress = [e for e in events if isinstance(e, OpProgress)]
    assert progress and progress[-1].done == progress[-1].total == a.manifest.total_size


@pytest.mark.anyio
async def test_a_corrupt_chunk_is_rejected_and_fetched_from_the_other(tmp_path: Path) -> None:
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / GAME, make_root(tmp_path / "a" / GAME))
    b = Seed(FakeSource("b" * 32), tmp_path / "b" / GAME, make_root(tmp_path / "b" / GAME))
    # b's disk went bad after it hashed: every chunk it sends of game.eti is wrong
    with open(b.root / "game.eti", "r+b") as fh:
        for offset in range(0, os.path.getsize(b.root / "game.eti"), CHUNK):
            fh.seek(offset)
            fh.write(b"\xff")
    events: list[Event] = []
    async with serving([a, b]):
        await download(tmp_path / "games", FakePeers([a, b]), events)
    assert tree(tmp_path / "games" / GAME) == tree(a.root)
    rejected = [e for e in events if isinstance(e, ChunkRejected)]
    assert rejected and {e.peer_id for e in rejected} == {b.source.peer_id}


@pytest.mark.anyio
async def test_the_only_source_leaving_ends_with_all_sources_gone(tmp_path: Path) -> None:
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / GAME, make_root(tmp_path / "a" / GAME))
    peers = FakePeers([a])
    real = peers.request
    first = threading.Event()

    async def leave_after_first_grant(peer: Source, message: Message, timeout: float) -> Message:
        if isinstance(message, OpenTransfer):
            if first.is_set():
                peers.present.clear()  # it left the network
                raise OSError("connection refused")
            first.set()
        return await real(peer, message, timeout)

    peers.request = leave_after_first_grant  # type: ignore[method-assign]
    async with serving([a]):
        with pytest.raises(AllSourcesGone, match="every peer serving aurora is gone"):
            await download(tmp_path / "games", peers, [])
    # with nowhere to record progress, nothing of the download is left
    assert not (tmp_path / "games" / GAME).exists()


@pytest.mark.anyio
async def test_a_failed_download_keeps_its_chunks_and_the_next_fetches_only_the_rest(
    tmp_path: Path,
) -> None:
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / GAME, make_root(tmp_path / "a" / GAME))
    peers = FakePeers([a])
    real = peers.request
    grants = 0

    async def leave_after_two_grants(peer: Source, message: Message, timeout: float) -> Message:
        nonlocal grants
        if isinstance(message, OpenTransfer):
            grants += 1
            if grants > 2:
                peers.present.clear()
                raise OSError("connection refused")
        return await real(peer, message, timeout)

    peers.request = leave_after_two_grants  # type: ignore[method-assign]
    record = tmp_path / "state" / "download.json"
    games = tmp_path / "games"
    async with serving([a]):
        with pytest.raises(AllSourcesGone):
            await download(games, peers, [], record)
    kept = resume.load(record)
    assert kept is not None and 0 < kept.done < a.manifest.total_size
    assert not (games / GAME / "version.ini").exists()  # never "downloaded" while partial
    # the source is back: only what is missing travels
    peers.request = real  # type: ignore[method-assign]
    peers.present = {a.source.peer_id}
    async with serving([a]):
        result = await download(games, peers, [], record)
    assert result["bytes"] == a.manifest.total_size - kept.done
    assert result["resumed"] == kept.done
    assert tree(games / GAME) == tree(a.root)
    assert not record.exists()


@pytest.mark.anyio
async def test_a_chunk_damaged_while_paused_is_fetched_again(tmp_path: Path) -> None:
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / GAME, make_root(tmp_path / "a" / GAME))
    record = tmp_path / "state" / "download.json"
    games = tmp_path / "games"
    async with serving([a]):
        await download(games, FakePeers([a]), [], record)
    # make it a paused download of every chunk, then damage one byte of one chunk
    (games / GAME / "version.ini").unlink()
    manifest = a.manifest
    chunks = chunk_ranges(manifest)
    resume.save(record, games / GAME, "1.0", manifest, range(len(chunks)), chunks, False)
    with open(games / GAME / "game.eti", "r+b") as fh:
        fh.seek(CHUNK * 3 + 5)
        fh.write(b"\x00")
    os.utime(games / GAME / "game.eti", ns=(1, 1))  # a changed file, as a later write leaves it
    async with serving([a]):
        result = await download(games, FakePeers([a]), [], record)
    assert result["bytes"] == CHUNK  # exactly the damaged chunk travelled again
    assert tree(games / GAME) == tree(a.root)


@pytest.mark.anyio
async def test_no_holder_is_an_error_naming_game_and_version(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="no peer serves aurora 1.0"):
        await download(tmp_path / "games", FakePeers([]), [])


def _manifest(tmp_path: Path, name: str, seed: int) -> Manifest:
    return make_root(tmp_path / name, seed)


def test_the_manifest_a_strict_majority_agrees_on_wins(tmp_path: Path) -> None:
    good, bad = _manifest(tmp_path, "g", 1), _manifest(tmp_path, "b", 2)
    manifest, agreeing = choose_manifest({"p1": good, "p2": good, "p3": bad}, None)
    assert manifest.manifest_hash == good.manifest_hash and agreeing == ["p1", "p2"]
    with pytest.raises(DownloadError, match=r"\(1 of 2 machines agree: p1 holds .*; p2 holds"):
        choose_manifest({"p1": good, "p2": bad}, None)


def test_votes_count_per_machine_not_per_peer(tmp_path: Path) -> None:
    good, bad = _manifest(tmp_path, "g", 1), _manifest(tmp_path, "b", 2)
    # three processes on one machine serve other bytes; two honest machines
    manifests = {"r1": bad, "r2": bad, "r3": bad, "h1": good, "h2": good}
    hosts = {"r1": "10.0.0.9", "r2": "10.0.0.9", "r3": "10.0.0.9", "h1": "10.0.0.1"}
    hosts["h2"] = "10.0.0.2"
    manifest, agreeing = choose_manifest(manifests, None, hosts)
    assert manifest.manifest_hash == good.manifest_hash and agreeing == ["h1", "h2"]
    # counted per peer, the three would have won
    manifest, _ = choose_manifest(manifests, None)
    assert manifest.manifest_hash == bad.manifest_hash
    # one machine whose peers disagree decides nothing
    one = {"a": good, "b": good, "c": bad}
    with pytest.raises(DownloadError, match="peers disagree"):
        choose_manifest(one, None, dict.fromkeys(one, "127.0.0.1"))


def test_a_silent_source_is_no_vote_against(tmp_path: Path) -> None:
    good = _manifest(tmp_path, "g", 1)
    # three holders were asked; one did not answer: the two answers agree
    manifest, agreeing = choose_manifest({"p1": good, "p2": good}, None)
    assert manifest.manifest_hash == good.manifest_hash and agreeing == ["p1", "p2"]
    manifest, agreeing = choose_manifest({"p1": good}, None)
    assert agreeing == ["p1"]


def test_a_trusted_hash_decides_even_against_the_majority(tmp_path: Path) -> None:
    good, bad = _manifest(tmp_path, "g", 1), _manifest(tmp_path, "b", 2)
    manifests = {"p1": bad, "p2": bad, "p3": good}
    manifest, agreeing = choose_manifest(manifests, good.manifest_hash)
    assert manifest.manifest_hash == good.manifest_hash and agreeing == ["p3"]
    with pytest.raises(DownloadError, match="no peer offers the manifest the catalog trusts"):
        choose_manifest({"p1": bad}, good.manifest_hash)
