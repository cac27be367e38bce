"""The outbound-transfers event: at most one each OUTBOUND_EVERY, the last count always."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from lanspread_core.config import PeerConfig
from lanspread_core.events import OutboundTransfers
from lanspread_core.plugin.registry import load_registry
from lanspread_core.runtime import peer as peer_module
from lanspread_core.runtime.peer import PeerRuntime


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_a_burst_of_transfers_is_one_event_now_and_one_with_the_last_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(peer_module, "OUTBOUND_EVERY", 0.2)
    config = PeerConfig(games_dir=tmp_path / "games", state_dir=tmp_path / "state", data_port=7001)
    rt = PeerRuntime(config, load_registry())
    seen: list[int] = []
    sub = rt.bus.subscribe()
    async with anyio.create_task_group() as tg:
        rt._tg = tg
        for _ in range(10):  # a crowd: transfers start and end back to back
            async with rt.outbound.register("aurora", "b" * 32):
                pass
        await anyio.sleep(0.4)
        seen = [e.count for e in sub._buf if isinstance(e, OutboundTransfers)]
    # the first change at once, then the state 0.2 s later: not 20 events
    assert seen == [1, 0]
