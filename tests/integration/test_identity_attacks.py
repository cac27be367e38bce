"""A rogue client cannot act as another peer: its key proves its own id only.

The rogue here is written against docs/protocol.md: a QUIC client with a
certificate of its own, and a control server of its own that answers every
request with an error. It tries what issue 15 reproduced against protocol 2:
greeting a peer as the seed (to re-point the seed's entry at the rogue), and
saying Goodbye for the seed. Both are refused, the seed stays where it is,
and the download that follows installs the seed's bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest

from lanspread_core.control.client import ControlPool
from lanspread_core.control.errors import PeerError
from lanspread_core.control.server import Remote, serve_control
from lanspread_core.wire.messages import PROTO_VER, Error, Goodbye, Hello, Message
from lanspread_fixture.gamesets import create_set
from support.data import TEST_PEER_ID, fixed_identity
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import digest_tree


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def rogue_server() -> AsyncIterator[int]:
    """Where the rogue wants the victim's requests to go: it answers nothing useful."""

    async def refuse(request: Message, remote: Remote) -> Message:
        return Error.of("unavailable", "the rogue serves nothing")

    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(serve_control, "127.0.0.1", 0, fixed_identity(), refuse)
        yield endpoint.port
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_no_one_can_greet_or_say_goodbye_as_another_peer(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    with (
        PeerProc(tmp_path / "seed", args=[*LOOPBACK, "--name", "seed"], catalog=catalog) as seed,
        PeerProc(
            tmp_path / "guest", args=[*LOOPBACK, "--peer", seed.control], catalog=catalog
        ) as guest,
    ):
        await anyio.to_thread.run_sync(lambda: sources_of(guest, "borealis", 1))
        host, port = guest.control.rsplit(":", 1)
        pool = ControlPool(identity=fixed_identity())
        try:
            async with rogue_server() as rogue_port:
                # the seed's id, the rogue's address: re-pointing the seed
                takeover = Hello(seed.peer_id, PROTO_VER, 0, "", (), rogue_port, "seed", rogue_port)
                with pytest.raises(PeerError) as refused:
                    await pool.request(host, int(port), takeover, timeout=10)
                assert refused.value.code == "identity"
                with pytest.raises(PeerError) as refused:
                    await pool.request(host, int(port), Goodbye(seed.peer_id), timeout=10)
                assert refused.value.code == "identity"
                # the rogue as itself is a peer like any other
                own = Hello(TEST_PEER_ID, PROTO_VER, 0, "", (), rogue_port, "rogue", rogue_port)
                await pool.request(host, int(port), own, timeout=10)
                peers = await anyio.to_thread.run_sync(lambda: guest.ok("peers")["peers"])
                where = {p["peer_id"]: p["addr"] for p in peers}
                assert where[seed.peer_id] == seed.control  # not evicted, not moved
                result = await anyio.to_thread.run_sync(
                    lambda: guest.ok("download", game_id="borealis", wait=True, timeout=120)
                )
        finally:
            await pool.aclose()
        assert set(result["peers"]) == {seed.peer_id}
        assert digest_tree(guest.games_dir / "borealis") == digest_tree(seed.games_dir / "borealis")
