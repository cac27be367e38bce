"""One peer flooding OpenTransfer cannot lock others out of grants: tokens are
capped per peer, and a refusal is an ordinary ``busy`` answer, logged once."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from lanspread_core.config import PeerConfig
from lanspread_core.control.client import ControlPool
from lanspread_core.control.server import Remote
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.tokens import MAX_PER_PEER, TokensBusy, TransferTokens
from lanspread_core.library.catalog import load_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.served import ServedLibrary
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import load_registry
from lanspread_core.runtime.handlers import RequestHandlers
from lanspread_core.runtime.swarm import Swarm
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.wire.messages import (
    PROTO_VER,
    ByteRange,
    Error,
    Hello,
    HelloAck,
    OpenTransfer,
    TransferGrant,
)

ME = "a" * 32
ROGUE = "r" * 32
HONEST = "h" * 32
REMOTE = Remote("10.9.9.9", 40000)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Peer:
    """A plain holder of the parts ``Serving`` names."""

    def __init__(self, tmp_path: Path, sync: PeerSync, served: ServedLibrary) -> None:
        games = tmp_path / "games"
        self.config = PeerConfig(games_dir=games, state_dir=tmp_path / "state", data_port=7001)
        self.registry = load_registry()
        state = StateDir(tmp_path / "state")
        state.ensure()
        self.library = Library(games, state, load_catalog(tmp_path / "catalog.json"))
        self.library.refresh()
        self.served = served
        self.served.update(*self.library.snapshot())
        self.ops = OperationTable()
        self.outbound = OutboundTransfers()
        self.tokens = TransferTokens()
        self.sync = sync
        self.swarm = Swarm(served, lambda: None)

    def greeting(self, cls: type[Hello] | type[HelloAck]) -> Hello | HelloAck:
        return cls(ME, PROTO_VER, self.served.rev, self.served.digest, (), 7001, "me", 7000)


@pytest.fixture
async def handlers(tmp_path: Path) -> AsyncIterator[tuple[RequestHandlers, Peer]]:
    root = tmp_path / "games" / "aurora"
    root.mkdir(parents=True)
    (root / "a.eti").write_bytes(b"x" * 5000)
    (root / "version.ini").write_text("1.0\n")
    (tmp_path / "catalog.json").write_text(
        json.dumps({"games": [{"id": "aurora", "name": "A", "version": "1.0"}]})
    )
    served = ServedLibrary(ME)
    sync = PeerSync(
        ME,
        ControlPool(),
        lambda event: None,
        lambda cls: cls(ME, PROTO_VER, 0, "", (), 0, "", 0),
        lambda: served.rev,
        ping_interval=1.0,
        stale_timeout=5.0,
    )
    peer = Peer(tmp_path, sync, served)
    async with anyio.create_task_group() as tg:
        sync.attach(tg)
        yield RequestHandlers(peer), peer  # type: ignore[arg-type]
        tg.cancel_scope.cancel()


def one_range(peer_id: str) -> OpenTransfer:
    return OpenTransfer(peer_id, "aurora", (ByteRange("a.eti", 0, 10),))


@pytest.mark.anyio
async def test_a_flooding_peer_gets_busy_and_another_peer_still_gets_grants(
    handlers: tuple[RequestHandlers, Peer], caplog: pytest.LogCaptureFixture
) -> None:
    server, peer = handlers
    caplog.set_level(logging.DEBUG)
    replies = [await server.handle(one_range(ROGUE), REMOTE) for _ in range(1100)]
    granted = [r for r in replies if isinstance(r, TransferGrant)]
    refused = [r for r in replies if isinstance(r, Error)]
    assert len(granted) == MAX_PER_PEER
    assert refused and {r.code for r in refused} == {"busy"}
    assert peer.tokens.outstanding(ROGUE) == MAX_PER_PEER
    for _ in range(8):  # a downloader's streams and pipelines
        assert isinstance(await server.handle(one_range(HONEST), REMOTE), TransferGrant)
    # the refusals are logged once for that cause and peer, never as a traceback
    refusals = [r for r in caplog.records if ROGUE[:8] in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in refusals]
    assert refusals[0].levelno == logging.WARNING
    assert not any(r.exc_info for r in caplog.records)
    assert not any(r.levelno >= logging.ERROR for r in caplog.records)


def test_the_global_cap_holds_too_and_a_redeemed_token_frees_its_peer_slot() -> None:
    tokens = TransferTokens(max_outstanding=4, max_per_peer=2)
    issued = [tokens.issue("g", p, ()) for p in ("p1", "p1", "p2", "p2")]
    with pytest.raises(TokensBusy) as total:
        tokens.issue("g", "p3", ())
    assert total.value.cause == "total"
    with pytest.raises(TokensBusy) as own:
        tokens.issue("g", "p1", ())
    assert own.value.cause == "peer"
    tokens.redeem(issued[0])
    assert tokens.outstanding("p1") == 1
    tokens.issue("g", "p1", ())


def test_expired_tokens_free_their_peer_slots() -> None:
    now = [0.0]
    tokens = TransferTokens(clock=lambda: now[0], max_per_peer=2)
    tokens.issue("g", "p1", (), ttl=5)
    tokens.issue("g", "p1", (), ttl=5)
    now[0] = 6.0
    assert tokens.outstanding("p1") == 0
    tokens.issue("g", "p1", ())
