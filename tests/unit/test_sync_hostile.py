"""Library sync against peers that lie: real ``PeerSync``, a scripted control plane."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
import pytest

from lanspread_core.events import Event, PeerLibrary
from lanspread_core.runtime import sync as sync_module
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.wire.messages import (
    PROTO_VER,
    GameInfo,
    GetDelta,
    GetSnapshot,
    Hello,
    LibraryDelta,
    LibrarySnapshot,
    Message,
)

ME, OTHER = "a" * 32, "b" * 32
AURORA = GameInfo("aurora", "1.0", 10, "h1")
BOREALIS = GameInfo("borealis", "2.1.0", 20, "h2")
BOGUS = tuple(GameInfo(f"bogus-{i}", "1", 1, "h") for i in range(45_000))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Pool:
    """A peer's control plane: a snapshot at ``rev`` of ``games``, deltas adding ``added``."""

    def __init__(self) -> None:
        self.requests: list[Message] = []
        self.games: tuple[GameInfo, ...] = (AURORA, BOREALIS, *BOGUS)
        self.added: tuple[GameInfo, ...] = ()
        self.rev = 3

    async def request(
        self, host: str, port: int, message: Message, *, timeout: float, expect: str | None = None
    ) -> Message:
        self.requests.append(message)
        await anyio.sleep(0)
        if isinstance(message, GetSnapshot):
            return LibrarySnapshot(OTHER, self.rev, self.games)
        assert isinstance(message, GetDelta)
        return LibraryDelta(OTHER, message.from_rev, self.rev, self.added, (), ())

    async def discard(self, host: str, port: int) -> None:
        pass


class Party:
    def __init__(self, peers: PeerSync, pool: Pool, events: list[Event], catalog: set[str]):
        self.peers, self.pool, self.events, self.catalog = peers, pool, events, catalog


@pytest.fixture
async def party() -> AsyncIterator[Party]:
    pool, events, catalog = Pool(), [], {"aurora"}
    peers = PeerSync(
        ME,
        pool,  # type: ignore[arg-type]
        events.append,
        lambda cls: cls(ME, PROTO_VER, 0, "", (), 0, "me", 0),
        lambda: 0,
        ping_interval=1.0,
        stale_timeout=60.0,
        in_catalog=lambda game_id: game_id in catalog,
    )
    async with anyio.create_task_group() as tg:
        peers.attach(tg)
        yield Party(peers, pool, events, catalog)
        tg.cancel_scope.cancel()


def hello(rev: int) -> Hello:
    return Hello(OTHER, PROTO_VER, rev, "d", ("library-delta",), 6001, "mallory", 6000)


async def settle() -> None:
    for _ in range(50):
        await anyio.sleep(0)


@pytest.mark.anyio
async def test_games_outside_the_catalog_are_not_kept(party: Party) -> None:
    peer = party.peers.register(hello(3), "10.0.0.2", 6000, "in")
    await settle()
    assert set(peer.games) == {"aurora"}
    listed = [e for e in party.events if isinstance(e, PeerLibrary)]
    assert listed and listed[-1].games == ["aurora"]
    # a delta that adds more of them keeps none either
    party.pool.added = (GameInfo("bogus-x", "1", 1, "h"), BOREALIS)
    party.pool.rev = 4
    party.peers.announced(peer, 4, "other")
    await settle()
    assert [type(r) for r in party.pool.requests] == [GetSnapshot, GetDelta]
    assert set(peer.games) == {"aurora"} and peer.library_rev == 4
    assert party.peers.holders("borealis", "2.1.0") == []
    # the catalog now names borealis: the library is fetched whole again
    party.catalog.add("borealis")
    party.peers.catalog_changed()
    await settle()
    assert type(party.pool.requests[-1]) is GetSnapshot
    assert set(peer.games) == {"aurora", "borealis"}
    assert [p.peer_id for p in party.peers.holders("borealis", "2.1.0")] == [OTHER]


async def until_idle(peers: PeerSync) -> None:
    with anyio.fail_after(30):
        while OTHER in peers._syncing:
            await anyio.sleep(0.01)


@pytest.mark.anyio
async def test_a_peer_announcing_what_it_never_serves_is_bounded_then_ignored(
    party: Party, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sync_module, "SYNC_BACKOFF", 0.001)
    caplog.set_level(logging.DEBUG, logger=sync_module.__name__)
    party.pool.games = (AURORA,)
    party.pool.rev = 3  # what it serves; it announces 10
    peer = party.peers.register(hello(10), "10.0.0.2", 6000, "in")
    await until_idle(party.peers)
    assert len(party.pool.requests) == sync_module.SYNC_ATTEMPTS
    assert peer.library_rev == 3 and set(peer.games) == {"aurora"}
    # every ping says 10 again: each costs a bounded number of requests, then none
    for _ in range(20):
        party.peers.announced(peer, 10, "never-served")
        await until_idle(party.peers)
    bound = sync_module.SYNC_ATTEMPTS * sync_module.MISBEHAVING_AFTER
    assert len(party.pool.requests) == bound
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1 and "misbehaves" in warnings[0].getMessage()
    assert "revision 10 but serves 3" in warnings[0].getMessage()
    # when its time out ends it is heard again, and a second offence is not logged again
    peer.ignored_until = 0.0
    for _ in range(sync_module.MISBEHAVING_AFTER + 2):
        party.peers.announced(peer, 10, "never-served")
        await until_idle(party.peers)
    assert len(party.pool.requests) == 2 * bound
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1
    # the peer still counts: what it did deliver is known, and it is not dropped
    assert party.peers.is_present(OTHER)


@pytest.mark.anyio
async def test_a_peer_that_delivers_what_it_announces_is_never_ignored(party: Party) -> None:
    party.pool.games = (AURORA,)
    peer = party.peers.register(hello(3), "10.0.0.2", 6000, "in")
    await until_idle(party.peers)
    for rev in range(4, 4 + 2 * sync_module.MISBEHAVING_AFTER * sync_module.SYNC_ATTEMPTS):
        party.pool.rev = rev
        party.peers.announced(peer, rev, f"d{rev}")
        await until_idle(party.peers)
        assert peer.library_rev == rev
    assert peer.ignored_until == 0.0 and peer.undelivered == 0
