"""Answering other peers, in one process: the handler table over real library parts.

The handlers see the peer through the ``Serving`` protocol, so here it is a
plain object holding a real library, served listing, operation table, token
table and peer table; requests are the real wire messages, answered without
any QUIC in between.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest

from lanspread_core.config import PeerConfig
from lanspread_core.control.client import ControlPool
from lanspread_core.control.server import Remote
from lanspread_core.dataplane.errors import TransferRefused
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.events import Event, OpKind, PeerJoined, PeerLeft
from lanspread_core.library.catalog import load_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.manifest import Manifest, build_manifest
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.served import ServedLibrary
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import Registry, load_registry
from lanspread_core.runtime import swarm as swarm_module
from lanspread_core.runtime.handlers import RequestHandlers
from lanspread_core.runtime.swarm import ANNOUNCE_EVERY, ANNOUNCE_RATE, Claim, Seeding, Swarm
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.wire.messages import (
    PROTO_VER,
    Ack,
    ByteRange,
    Error,
    GameInfo,
    GameManifest,
    GetDelta,
    GetGame,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    LibrarySnapshot,
    OpenTransfer,
    Ping,
    Pong,
    StreamInstall,
    TransferGrant,
)

ME = "a" * 32
OTHER = "b" * 32
REMOTE = Remote("10.9.9.9", 40000)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Peer:
    """A plain holder of the parts ``Serving`` names."""

    config: PeerConfig
    registry: Registry
    library: Library
    served: ServedLibrary
    ops: OperationTable
    outbound: OutboundTransfers
    tokens: TransferTokens
    sync: PeerSync
    swarm: Swarm

    def greeting(self, cls: type[Hello] | type[HelloAck]) -> Hello | HelloAck:
        return cls(ME, PROTO_VER, self.served.rev, self.served.digest, (), 7001, "me", 7000)


def hello(peer_id: str = OTHER, rev: int = 0, proto: int = PROTO_VER) -> Hello:
    return Hello(peer_id, proto, rev, "", (), 6001, "other", 6000)


@pytest.fixture
async def serving(tmp_path: Path) -> AsyncIterator[tuple[RequestHandlers, Peer, list[Event]]]:
    games = tmp_path / "games"
    root = games / "aurora"
    root.mkdir(parents=True)
    (root / "a.eti").write_bytes(b"x" * 5000)
    (root / "version.ini").write_text("1.0\n")
    catalog = tmp_path / "catalog.json"
    catalog.write_text(json.dumps({"games": [{"id": "aurora", "name": "A", "version": "1.0"}]}))
    state = StateDir(tmp_path / "state")
    state.ensure()
    library = Library(games, state, load_catalog(catalog))
    library.refresh()
    served = ServedLibrary(ME)
    served.update(*library.snapshot())
    events: list[Event] = []
    sync = PeerSync(
        ME,
        ControlPool(),
        events.append,
        lambda cls: cls(ME, PROTO_VER, 0, "", (), 0, "", 0),
        lambda: served.rev,
        ping_interval=1.0,
        stale_timeout=5.0,
        library_delta=served.delta,
    )
    config = PeerConfig(games_dir=games, state_dir=tmp_path / "state", data_port=7001)
    peer = Peer(
        config,
        load_registry(),
        library,
        served,
        OperationTable(),
        OutboundTransfers(),
        TransferTokens(),
        sync,
        Swarm(served, lambda: None),
    )
    async with anyio.create_task_group() as tg:
        sync.attach(tg)
        yield RequestHandlers(peer), peer, events
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_hello_registers_the_peer_and_goodbye_removes_only_it(serving) -> None:
    handlers, peer, events = serving
    reply = await handlers.handle(hello(), REMOTE)
    assert isinstance(reply, HelloAck) and reply.peer_id == ME
    known = peer.sync.table.get(OTHER)
    assert known is not None and (known.host, known.port) == ("10.9.9.9", 6000)
    assert [type(e) for e in events] == [PeerJoined]
    assert isinstance(await handlers.handle(Goodbye(OTHER), REMOTE), Ack)
    assert peer.sync.table.get(OTHER) is None
    assert isinstance(events[-1], PeerLeft) and events[-1].reason == "goodbye"


@pytest.mark.anyio
async def test_another_protocol_version_is_refused_and_not_registered(serving) -> None:
    handlers, peer, _ = serving
    reply = await handlers.handle(hello(proto=PROTO_VER + 1), REMOTE)
    assert isinstance(reply, Error) and reply.code == "proto_ver"
    assert len(peer.sync.table) == 0


@pytest.mark.anyio
async def test_ping_answers_our_rev_and_snapshots_list_what_is_served(serving) -> None:
    handlers, peer, _ = serving
    pong = await handlers.handle(Ping(OTHER, 0), REMOTE)
    assert isinstance(pong, Pong) and pong.library_rev == peer.served.rev
    snapshot = await handlers.handle(GetSnapshot(OTHER), REMOTE)
    assert isinstance(snapshot, LibrarySnapshot) and [g.id for g in snapshot.games] == ["aurora"]
    delta = await handlers.handle(GetDelta(OTHER, peer.served.rev), REMOTE)
    assert not (delta.added or delta.updated or delta.removed)  # type: ignore[union-attr]


@pytest.mark.anyio
async def test_manifests_and_grants_only_for_served_games_and_real_ranges(serving) -> None:
    handlers, peer, _ = serving
    manifest = await handlers.handle(GetGame(OTHER, "aurora"), REMOTE)
    assert isinstance(manifest, GameManifest) and manifest.version == "1.0"
    missing = await handlers.handle(GetGame(OTHER, "nosuch"), REMOTE)
    assert isinstance(missing, Error) and missing.code == "not_found"
    path = manifest.manifest["files"][0]["path"]
    grant = await handlers.handle(
        OpenTransfer(OTHER, "aurora", (ByteRange(path, 0, 5000),)), REMOTE
    )
    assert isinstance(grant, TransferGrant) and grant.data_port == 7001
    beyond = await handlers.handle(
        OpenTransfer(OTHER, "aurora", (ByteRange(path, 4000, 2000),)), REMOTE
    )
    assert isinstance(beyond, Error) and beyond.code == "bad_range"


@pytest.mark.anyio
async def test_a_game_under_a_local_operation_is_not_served(serving) -> None:
    handlers, peer, _ = serving
    peer.ops.begin("aurora", OpKind.UPDATE)
    for request in (
        OpenTransfer(OTHER, "aurora", (ByteRange("aurora/a.eti", 0, 10),)),
        StreamInstall(OTHER, "aurora"),
    ):
        reply = await handlers.handle(request, REMOTE)
        assert isinstance(reply, Error) and reply.code == "unavailable"
    with pytest.raises(TransferRefused):
        handlers.resolve_transfer(Grant("aurora", OTHER, ()))
    peer.ops.end("aurora")
    assert handlers.resolve_transfer(Grant("aurora", OTHER, ())) == peer.config.games_dir / "aurora"


@pytest.mark.anyio
async def test_a_request_type_without_a_handler_gets_unsupported(serving) -> None:
    handlers, _, _ = serving
    reply = await handlers.handle(Pong(OTHER, 1), REMOTE)  # a reply is no request
    assert isinstance(reply, Error) and reply.code == "unsupported"


@pytest.mark.anyio
async def test_a_downloading_peer_grants_only_chunks_it_has_verified(
    serving, tmp_path: Path
) -> None:
    handlers, peer, _ = serving
    source = tmp_path / "elsewhere" / "borealis"
    source.mkdir(parents=True)
    (source / "b.eti").write_bytes(bytes(range(256)) * 40)  # 10240 bytes: 3 chunks of 4096
    manifest = build_manifest(source, chunk_size=4096)
    peer.swarm.update("borealis", "2.0", manifest, frozenset({0, 2}))
    info = peer.served.games["borealis"]
    assert info.partial and info.manifest_hash == manifest.manifest_hash
    reply = await handlers.handle(GetGame(OTHER, "borealis"), REMOTE)
    assert isinstance(reply, GameManifest) and reply.manifest == manifest.to_json()

    def ranges(*chunks: tuple[int, int]) -> tuple[ByteRange, ...]:
        return tuple(ByteRange("b.eti", off, n) for off, n in chunks)

    grant = await handlers.handle(OpenTransfer(OTHER, "borealis", ranges((0, 4096))), REMOTE)
    assert isinstance(grant, TransferGrant)
    assert grant.have == info.have  # what it holds, fresher than its last ping
    for bad in (ranges((4096, 4096)), ranges((0, 4096), (4096, 4096)), ranges((0, 100))):
        refused = await handlers.handle(OpenTransfer(OTHER, "borealis", bad), REMOTE)
        assert isinstance(refused, Error) and refused.code == "unavailable", bad
    assert (
        "not verified"
        in (
            await handlers.handle(OpenTransfer(OTHER, "borealis", ranges((4096, 4096))), REMOTE)
        ).message
    )  # type: ignore[union-attr]
    # a stream-install needs the whole game
    refused = await handlers.handle(StreamInstall(OTHER, "borealis"), REMOTE)
    assert isinstance(refused, Error)
    # and a connection is checked again when it arrives
    root = peer.config.games_dir / "borealis"
    assert handlers.resolve_transfer(Grant("borealis", OTHER, ranges((8192, 2048)))) == root
    with pytest.raises(TransferRefused):
        handlers.resolve_transfer(Grant("borealis", OTHER, ranges((4096, 4096))))
    peer.swarm.end("borealis")
    assert "borealis" not in peer.served.games
    with pytest.raises(TransferRefused):
        handlers.resolve_transfer(Grant("borealis", OTHER, ranges((0, 4096))))


@pytest.mark.anyio
async def test_a_seed_sends_a_chunk_to_one_peer_of_a_crowd_while_others_are_unsent(
    serving,
) -> None:
    handlers, peer, _ = serving
    third = "c" * 32
    manifest = await handlers.handle(GetGame(OTHER, "aurora"), REMOTE)
    path = manifest.manifest["files"][0]["path"]  # type: ignore[union-attr]
    # aurora's one file is 5000 bytes: a single chunk, so every chunk has gone out
    # once the first peer has it, and then a second copy is fine
    first = await handlers.handle(
        OpenTransfer(OTHER, "aurora", (ByteRange(path, 0, 5000),)), REMOTE
    )
    again = await handlers.handle(
        OpenTransfer(third, "aurora", (ByteRange(path, 0, 5000),)), REMOTE
    )
    assert isinstance(first, TransferGrant) and isinstance(again, TransferGrant)
    seeding = peer.swarm.seeding
    two = (ByteRange("g.eti", 0, 4), ByteRange("g.eti", 4, 4))
    assert seeding.claim("g", OTHER, two[:1], chunks=lambda: 2) == Claim((0,), ())
    # the same peer may retry
    assert seeding.claim("g", OTHER, two[:1], chunks=lambda: 2) == Claim((0,), ())
    taken = seeding.claim("g", third, two[:1], chunks=lambda: 2)
    assert taken.granted == () and taken.taken == (0,) and "went to another peer" in taken.why
    # an unsent one instead
    assert seeding.claim("g", third, two[1:], chunks=lambda: 2) == Claim((0,), ())
    # all sent: copies are fine
    assert seeding.claim("g", "d" * 32, two[:1], chunks=lambda: 2) == Claim((0,), ())


def test_a_seed_grants_one_of_a_crowd_the_chunks_nobody_got_one_at_a_time() -> None:
    seeding = Seeding()
    five = tuple(ByteRange("g.eti", k * 4, 4) for k in range(5))
    # alone: the whole request
    assert seeding.claim("g", OTHER, five[:2], chunks=lambda: 5) == Claim((0, 1), ())
    # one of a crowd: the first chunk nobody got lately; the taken ones named
    third = "c" * 32
    assert seeding.claim("g", third, five[1:4], chunks=lambda: 5) == Claim((1,), (0,))
    # its own chunk is no taken one: asked again (a retry), it comes again
    assert seeding.claim("g", third, five, chunks=lambda: 5) == Claim((2,), (0, 1))
    assert seeding.claim("g", third, five[3:], chunks=lambda: 5) == Claim((0,), ())
    # the asker's own chunks are not taken from it
    assert seeding.claim("g", OTHER, five[:1], chunks=lambda: 5) == Claim((0,), ())
    # one chunk left that nobody got: the taken ones are still kept for the crowd
    assert seeding.claim("g", OTHER, five[2:], chunks=lambda: 5) == Claim((2,), (0, 1))


@pytest.mark.anyio
async def test_a_grant_to_one_of_a_crowd_covers_and_names_part_of_the_request(
    serving,
) -> None:
    handlers, peer, _ = serving
    for who in (OTHER, "c" * 32):  # both known: chunks sent to a peer gone count for nobody
        await handlers.handle(hello(who), REMOTE)
    manifest = await handlers.handle(GetGame(OTHER, "aurora"), REMOTE)
    path = manifest.manifest["files"][0]["path"]  # type: ignore[union-attr]
    thirds = tuple(ByteRange(path, k * 1000, 1000) for k in range(3))
    alone = await handlers.handle(OpenTransfer(OTHER, "aurora", thirds[:1]), REMOTE)
    assert isinstance(alone, TransferGrant) and (alone.granted, alone.taken) == ((), ())
    crowd = await handlers.handle(OpenTransfer("c" * 32, "aurora", thirds[1:]), REMOTE)
    assert isinstance(crowd, TransferGrant) and crowd.granted == (0,)
    # the token covers the granted range alone
    grant = peer.tokens.redeem(crowd.token, host=REMOTE.host)
    assert grant.ranges == thirds[1:2]


def _announcing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, peers: int = 0
) -> tuple[Swarm, Manifest, list[float], list[float]]:
    """A swarm on a fake clock (``now[0]``) that knows ``peers`` peers, a partial
    game's manifest, and the times it announced at."""
    source = tmp_path / "borealis"
    source.mkdir()
    (source / "b.eti").write_bytes(bytes(range(256)) * 40)
    manifest = build_manifest(source, chunk_size=4096)
    now = [100.0]
    monkeypatch.setattr(swarm_module.time, "monotonic", lambda: now[0])
    announced: list[float] = []
    swarm = Swarm(ServedLibrary(ME), lambda: announced.append(now[0]), lambda: peers)
    return swarm, manifest, now, announced


def test_a_downloading_peer_pings_at_once_for_its_first_chunk_then_at_most_each_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    swarm, manifest, now, announced = _announcing(tmp_path, monkeypatch)
    swarm.update("borealis", "2.0", manifest, frozenset())
    assert announced == []  # nothing to offer yet
    swarm.update("borealis", "2.0", manifest, frozenset({0}))
    now[0] += 0.1
    swarm.update("borealis", "2.0", manifest, frozenset({0, 1}))  # listed, not pinged yet
    now[0] += ANNOUNCE_EVERY
    swarm.update("borealis", "2.0", manifest, frozenset({0, 1, 2}))
    assert announced == [100.0, 100.1 + ANNOUNCE_EVERY]


def test_with_many_peers_a_downloading_peer_pings_each_less_often(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a ping to each of these peers is two seconds' worth of pings
    swarm, manifest, now, announced = _announcing(tmp_path, monkeypatch, 2 * int(ANNOUNCE_RATE))
    swarm.update("borealis", "2.0", manifest, frozenset({0}))
    now[0] += ANNOUNCE_EVERY
    swarm.update("borealis", "2.0", manifest, frozenset({0, 1}))
    now[0] = 102.0
    swarm.update("borealis", "2.0", manifest, frozenset({0, 1, 2}))
    assert announced == [100.0, 102.0]


@pytest.mark.anyio
async def test_a_pong_carries_the_changes_since_the_pinger_last_heard(serving) -> None:
    handlers, peer, _ = serving
    await handlers.handle(hello(), REMOTE)
    first = await handlers.handle(Ping(OTHER, 0), REMOTE)
    assert isinstance(first, Pong) and first.changed == ()  # it heard of nothing before
    partial = GameInfo("borealis", "2.0", 10, "h1", "AQ==")
    peer.served.set_partial("borealis", partial)
    second = await handlers.handle(Ping(OTHER, 0), REMOTE)
    assert isinstance(second, Pong) and second.library_rev == first.library_rev + 1
    assert (second.changes_from, second.changed) == (first.library_rev, (partial,))


def test_chunks_sent_to_a_peer_that_left_are_taken_by_nobody() -> None:
    seeding = Seeding()
    two = (ByteRange("g.eti", 0, 4), ByteRange("g.eti", 4, 4))
    assert seeding.claim("g", OTHER, two, chunks=lambda: 3) == Claim((0, 1), ())
    third, fourth = "c" * 32, "d" * 32
    # while OTHER is here, what it got is taken
    assert seeding.claim("g", third, two, lambda: 3).taken == (0, 1)
    # OTHER finished alone and left; a crowd starts: the chunks are new again
    here = {third, fourth}.__contains__
    assert seeding.claim("g", third, two, lambda: 3, present=here) == Claim((0, 1), ())
    refused = seeding.claim("g", fourth, two, lambda: 3, present=here)
    assert (refused.granted, refused.taken) == ((), (0, 1))
