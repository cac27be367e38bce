"""Library sync between peers: the digest spares a fetch, features pick the
request, and manifests are fetched once per peer and hash. Real ``PeerSync``
and ``agreed_sources``; the control plane is a recording stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from lanspread_core.control.errors import PeerUnreachable
from lanspread_core.events import Event, PeerJoined, PeerLibrary
from lanspread_core.library.manifest import Manifest
from lanspread_core.library.served import ServedLibrary, digest
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.transfer.sources import ManifestCache, agreed_sources
from lanspread_core.wire.messages import (
    PROTO_VER,
    GameInfo,
    GetDelta,
    GetSnapshot,
    Hello,
    HelloAck,
    LibraryDelta,
    LibrarySnapshot,
    Message,
    Ping,
    Pong,
)
from support.holders import Holders, small_manifest

ME, OTHER = "a" * 32, "b" * 32
GAMES = (GameInfo("aurora", "1.0", 10, "h1"), GameInfo("borealis", "2.1.0", 20, "h2"))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Pool:
    """Answers library requests from a listing, and records every request."""

    def __init__(self) -> None:
        self.requests: list[Message] = []
        self.games: tuple[GameInfo, ...] = GAMES
        self.rev = 3

    async def request(
        self, host: str, port: int, message: Message, *, timeout: float, expect: str | None = None
    ) -> Message:
        self.requests.append(message)
        if isinstance(message, GetSnapshot):
            return LibrarySnapshot(OTHER, self.rev, self.games)
        if isinstance(message, GetDelta):
            return LibraryDelta(OTHER, message.from_rev, self.rev, (), (), ())
        raise PeerUnreachable("nothing else answers here")

    async def discard(self, host: str, port: int) -> None:
        pass


def hello(rev: int, library_digest: str, features: tuple[str, ...] = ("library-delta",)) -> Hello:
    return Hello(OTHER, PROTO_VER, rev, library_digest, features, 6001, "bob", 6000)


@pytest.fixture
async def sync() -> AsyncIterator[tuple[PeerSync, Pool, list[Event]]]:
    pool, events = Pool(), []
    peers = PeerSync(
        ME,
        pool,  # type: ignore[arg-type]
        events.append,
        lambda cls: cls(ME, PROTO_VER, 0, "", (), 0, "me", 0),
        lambda: 0,
        ping_interval=1.0,
        stale_timeout=5.0,
    )
    async with anyio.create_task_group() as tg:
        peers.attach(tg)
        yield peers, pool, events
        tg.cancel_scope.cancel()


async def settle() -> None:
    for _ in range(20):
        await anyio.sleep(0)


@pytest.mark.anyio
async def test_a_matching_digest_skips_the_sync(sync) -> None:
    peers, pool, _ = sync
    peer = peers.register(hello(3, digest(dict((g.id, g) for g in GAMES))), "10.0.0.2", 6000, "in")
    await settle()
    assert [type(r) for r in pool.requests] == [GetSnapshot]
    assert peer.library_rev == 3 and set(peer.games) == {"aurora", "borealis"}
    # the peer's library went through changes and came back: same digest, no request
    peers.announced(peer, 7, peer.digest())
    await settle()
    assert len(pool.requests) == 1 and peer.library_rev == 7
    # a digest that differs is fetched, as a delta from where our copy is
    pool.rev = 8
    peers.announced(peer, 8, "something else")
    await settle()
    assert [type(r) for r in pool.requests] == [GetSnapshot, GetDelta]
    assert pool.requests[1].from_rev == 7  # type: ignore[attr-defined]
    # a revision without a digest (mDNS) is fetched too
    pool.rev = 9
    peers.announced(peer, 9)
    await settle()
    assert len(pool.requests) == 3 and peer.library_rev == 9


@pytest.mark.anyio
async def test_changes_a_ping_carries_are_applied_without_a_fetch(sync) -> None:
    peers, pool, events = sync
    peer = peers.register(hello(3, "x"), "10.0.0.2", 6000, "in")
    await settle()
    assert [type(r) for r in pool.requests] == [GetSnapshot] and peer.library_rev == 3
    have = GameInfo("aurora", "1.0", 10, "h1", "AQ==")  # a have-map changed
    ping = Ping(OTHER, 4, "", changes_from=3, changed=(have,))
    peers.pushed(peer, ping)
    peers.announced(peer, ping.library_rev, ping.library_digest)
    await settle()
    assert len(pool.requests) == 1  # no GetDelta
    assert peer.library_rev == 4 and peer.games["aurora"] == have
    assert events[-1] == PeerLibrary(OTHER, 4, "delta", ["aurora", "borealis"])
    # changes from a revision our copy is not at are not applied: fetched as before
    skipped = Ping(OTHER, 6, "", changes_from=5, changed=(GameInfo("aurora", "1.0", 10, "h1"),))
    peers.pushed(peer, skipped)
    assert peer.library_rev == 4 and peer.games["aurora"] == have
    peers.announced(peer, skipped.library_rev, skipped.library_digest)
    await settle()
    assert [type(r) for r in pool.requests] == [GetSnapshot, GetDelta]


@pytest.mark.anyio
async def test_a_ping_carries_the_changes_since_the_peer_last_heard() -> None:
    served = ServedLibrary(ME)
    peers = PeerSync(
        ME,
        Pool(),  # type: ignore[arg-type]
        lambda _e: None,
        lambda cls: cls(ME, PROTO_VER, 0, "", (), 0, "me", 0),
        lambda: served.rev,
        ping_interval=1.0,
        stale_timeout=5.0,
        library_delta=served.delta,
    )
    async with anyio.create_task_group() as tg:
        peers.attach(tg)
        peer = peers.register(hello(3, "x"), "10.0.0.2", 6000, "in")
        tg.cancel_scope.cancel()
    served.set_partial("aurora", GameInfo("aurora", "1.0", 10, "h1", "AQ=="))
    assert peers.changes_for(peer, served.rev) == (0, (), ())  # it heard of nothing yet
    peer.told_rev = served.rev
    partial = GameInfo("aurora", "1.0", 10, "h1", "Aw==")
    served.set_partial("aurora", partial)
    assert peers.changes_for(peer, served.rev) == (served.rev - 1, (partial,), ())


@pytest.mark.anyio
async def test_a_peer_that_comes_back_unchanged_gets_its_library_back(sync) -> None:
    peers, pool, events = sync
    listing = digest(dict((g.id, g) for g in GAMES))
    peers.register(hello(3, listing), "10.0.0.2", 6000, "in")
    await settle()
    peers.drop(OTHER, "goodbye")
    events.clear()
    peer = peers.register(hello(1, listing), "10.0.0.2", 6000, "in")  # restarted: a new rev
    await settle()
    assert len(pool.requests) == 1  # only the first snapshot, ever
    assert peer.library_rev == 1 and set(peer.games) == {"aurora", "borealis"}
    assert [type(e) for e in events] == [PeerJoined, PeerLibrary]
    assert events[1].via == "digest"  # type: ignore[attr-defined]
    # one that comes back with other games is fetched afresh
    peers.drop(OTHER, "goodbye")
    peer = peers.register(hello(2, "changed"), "10.0.0.2", 6000, "in")
    await settle()
    assert [type(r) for r in pool.requests] == [GetSnapshot, GetSnapshot]


@pytest.mark.anyio
async def test_features_decide_between_delta_and_snapshot(sync) -> None:
    peers, pool, _ = sync
    peer = peers.register(hello(3, "x", features=()), "10.0.0.2", 6000, "in")
    await settle()
    pool.rev = 4
    peers.announced(peer, 4, "y")
    await settle()
    # it never said it answers GetDelta: snapshots only
    assert [type(r) for r in pool.requests] == [GetSnapshot, GetSnapshot]
    assert peer.features == ()


@pytest.mark.anyio
async def test_an_address_change_updates_the_entry_not_a_second_one(sync) -> None:
    peers, _, events = sync
    peers.register(hello(3, "x"), "10.0.0.2", 6000, "in")
    moved = peers.register(
        HelloAck(OTHER, PROTO_VER, 3, "x", (), 6001, "bob", 6500), "10.0.0.9", 6500, "out"
    )
    assert len(peers.table) == 1 and (moved.host, moved.port) == ("10.0.0.9", 6500)
    assert [type(e) for e in events].count(PeerJoined) == 1


# -- manifests ----------------------------------------------------------------


def manifest(tmp_path: Path, seed: int) -> Manifest:
    return small_manifest(tmp_path, seed)


@pytest.mark.anyio
async def test_a_repeated_download_does_not_fetch_every_manifest_again(tmp_path: Path) -> None:
    good, other = manifest(tmp_path, 1), manifest(tmp_path, 2)
    peers = Holders(ME)
    for pid in ("p1" * 16, "p2" * 16, "p3" * 16):
        peers.add(pid, "", good)
    cache = ManifestCache()
    agreed, sources = await agreed_sources(peers, "aurora", "1.0", None, cache=cache)
    assert agreed.manifest_hash == good.manifest_hash and len(sources) == 3
    assert sorted(peers.asked) == sorted(peers.peers)
    peers.asked.clear()
    agreed, sources = await agreed_sources(peers, "aurora", "1.0", None, cache=cache)
    assert peers.asked == [] and len(sources) == 3
    # a peer that now lists another manifest is asked again, and outvoted
    peers.add("p3" * 16, "", other)
    agreed, sources = await agreed_sources(peers, "aurora", "1.0", None, cache=cache)
    assert peers.asked == ["p3" * 16]
    assert agreed.manifest_hash == good.manifest_hash and len(sources) == 2
    # a hash kept for one peer is no answer for another that never sent it
    assert cache.get("p9" * 16, good.manifest_hash) is None


def test_the_cache_keeps_the_newest_manifests(tmp_path: Path) -> None:
    cache = ManifestCache(keep=2)
    kept: list[Any] = [manifest(tmp_path, i) for i in range(3)]
    for m in kept:
        cache.put("p1" * 16, m)
    assert cache.get("p1" * 16, kept[0].manifest_hash) is None
    assert cache.get("p1" * 16, kept[2].manifest_hash) is kept[2]


@pytest.mark.anyio
async def test_the_changes_a_pong_carries_are_applied_without_a_getdelta(sync) -> None:
    peers, pool, _ = sync
    peer = peers.register(hello(3, "x"), "10.0.0.2", 6000, "in")
    await settle()
    assert peer.library_rev == 3
    partial = GameInfo("cascade", "1.0", 10, "h9", "AQ==")

    async def pong(host: str, port: int, message: Message, **_: object) -> Message:
        pool.requests.append(message)
        return Pong(OTHER, 4, "", changes_from=3, changed=(partial,))

    pool.request = pong  # type: ignore[method-assign]
    asked = len(pool.requests)
    await peers._ping(peer)
    await settle()
    assert peer.library_rev == 4 and peer.games["cascade"] == partial
    assert [type(r) for r in pool.requests[asked:]] == [Ping]  # no GetDelta after it
