"""The supervisor's policies, alone and inside a real in-process runtime."""

from __future__ import annotations

import types
from pathlib import Path

import anyio
import pytest

import lanspread_core.runtime.peer as runtime_mod
from lanspread_core import DiscoveryRecord, hookimpl
from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.events import RuntimeFailed
from lanspread_core.plugin.registry import load_registry
from lanspread_core.runtime.peer import start_peer
from lanspread_core.runtime.supervisor import Policy, RequiredServiceFailed, Supervisor


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_required_failure_is_fatal_restart_comes_back_best_effort_stays_down() -> None:
    fatal: list[RequiredServiceFailed] = []
    runs = {"restart": 0, "best": 0}

    async def required() -> None:
        await anyio.sleep(0.01)
        raise RuntimeError("socket closed")

    async def flaky() -> None:
        runs["restart"] += 1
        if runs["restart"] < 3:
            raise RuntimeError("mdns hiccup")
        await anyio.sleep_forever()

    async def best() -> None:
        runs["best"] += 1
        raise RuntimeError("watch limit")

    async def on_fatal(exc: RequiredServiceFailed) -> None:
        fatal.append(exc)

    async with anyio.create_task_group() as tg:
        sup = Supervisor(tg, on_fatal, backoff=0.01)
        sup.start("control", Policy.REQUIRED, required)
        sup.start("discovery", Policy.RESTART, flaky)
        sup.start("monitor", Policy.BEST_EFFORT, best)
        with anyio.fail_after(5):
            while not (fatal and runs["restart"] >= 3):
                await anyio.sleep(0.01)
        await anyio.sleep(0.05)
        assert sup.services["discovery"].running and sup.services["discovery"].restarts == 2
        assert runs["best"] == 1 and not sup.services["monitor"].running
        assert "socket closed" in str(fatal[0]) and fatal[0].name == "control"
        tg.cancel_scope.cancel()


def _config(tmp_path: Path, discovery: tuple[str, ...] = ()) -> PeerConfig:
    return PeerConfig(
        games_dir=tmp_path / "games",
        state_dir=tmp_path / "state",
        discovery=discovery,
        listen=HostPort("127.0.0.1", 0),
    )


class FlakyDiscovery:
    name = "flaky"
    starts = 0

    def __init__(self, config: PeerConfig) -> None:
        pass

    async def run(self, me, sink, *, task_status=anyio.TASK_STATUS_IGNORED) -> None:
        FlakyDiscovery.starts += 1
        task_status.started()
        if FlakyDiscovery.starts == 1:
            raise OSError("multicast not available yet")
        await anyio.sleep_forever()

    async def update(self, me) -> None:
        pass


@pytest.mark.anyio
async def test_a_restart_service_comes_back_in_a_real_runtime(tmp_path: Path) -> None:
    @hookimpl
    def lanspread_discovery_backends():
        return [DiscoveryRecord(name="flaky", factory=FlakyDiscovery)]

    registry = load_registry(
        extra=[
            (
                "flaky",
                types.SimpleNamespace(lanspread_discovery_backends=lanspread_discovery_backends),
            )
        ]
    )
    async with anyio.create_task_group() as tg:
        handle = await start_peer(_config(tmp_path, ("flaky",)), registry, tg)
        with anyio.fail_after(10):
            while True:
                status = await handle.send({"cmd": "status"})
                service = status["services"]["discovery:flaky"]
                if service["restarts"] == 1 and service["running"]:
                    break
                await anyio.sleep(0.1)
        assert "multicast not available yet" in service["last_error"]
        await handle.shutdown()


@pytest.mark.anyio
async def test_a_failing_required_service_ends_the_runtime(tmp_path: Path, monkeypatch) -> None:
    real = runtime_mod.serve_control

    async def dying_control(*args, **kwargs) -> None:
        with anyio.move_on_after(0.3):
            await real(*args, **kwargs)
        raise RuntimeError("UDP socket vanished")

    monkeypatch.setattr(runtime_mod, "serve_control", dying_control)
    async with anyio.create_task_group() as tg:
        handle = await start_peer(_config(tmp_path), load_registry(), tg)
        events = handle.events()
        with anyio.fail_after(10):
            await handle.wait_stopped()
        seen = []
        async for event in events:
            seen.append(event)
        assert any(isinstance(e, RuntimeFailed) and "UDP socket vanished" in e.error for e in seen)
        assert handle.failure and "UDP socket vanished" in handle.failure
