"""Long-lived services under a supervisor, each with a failure policy (DESIGN §2).

* ``REQUIRED``: its failure ends the runtime (the QUIC server).
* ``RESTART``: it is started again after a back-off (discovery, liveness).
* ``BEST_EFFORT``: its failure is logged and it stays down (the local monitor).

Every service runs in the supervisor's task group; cancelling the group stops
them all. A service that returns normally is treated like one that failed,
except for ``BEST_EFFORT``, because long-lived services are not supposed to end.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

import anyio
import anyio.abc

from lanspread_core.errors import LanspreadError

log = logging.getLogger(__name__)

Service = Callable[[], Awaitable[None]]


class Policy(StrEnum):
    REQUIRED = "required"
    RESTART = "restart"
    BEST_EFFORT = "best_effort"


class RequiredServiceFailed(Exception):
    def __init__(self, name: str, cause: BaseException | None) -> None:
        self.name = name
        self.cause = cause
        why = f"{type(cause).__name__}: {cause}" if cause else "it stopped"
        super().__init__(f"service {name} failed ({why})")


@dataclass
class ServiceState:
    name: str
    policy: Policy
    restarts: int = 0
    running: bool = False
    last_error: str = ""


class Supervisor:
    """Runs services in ``tg``; calls ``on_fatal`` when a REQUIRED one dies."""

    def __init__(
        self,
        tg: anyio.abc.TaskGroup,
        on_fatal: Callable[[RequiredServiceFailed], Awaitable[None]],
        *,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
    ) -> None:
        self._tg = tg
        self._on_fatal = on_fatal
        self._backoff = backoff
        self._max_backoff = max_backoff
        self.services: dict[str, ServiceState] = {}

    def start(self, name: str, policy: Policy, service: Service) -> None:
        state = ServiceState(name, policy)
        self.services[name] = state
        self._tg.start_soon(self._run, state, service, name=f"service:{name}")

    async def _run(self, state: ServiceState, service: Service) -> None:
        delay = self._backoff
        while True:
            state.running = True
            error: BaseException | None = None
            try:
                await service()
            except anyio.get_cancelled_exc_class():
                state.running = False
                raise
            except Exception as exc:
                error = exc
            state.running = False
            state.last_error = f"{type(error).__name__}: {error}" if error else "stopped"
            if state.policy is Policy.REQUIRED:
                # an expected failure (a port in use) reaches the user once, through
                # on_fatal; only a bug is worth an error line of its own
                level = logging.INFO if isinstance(error, LanspreadError) else logging.ERROR
                log.log(level, "required service %s failed: %s", state.name, state.last_error)
                await self._on_fatal(RequiredServiceFailed(state.name, error))
                return
            if state.policy is Policy.BEST_EFFORT:
                if error is not None:
                    log.warning("service %s failed and stays down: %s", state.name, error)
                return
            state.restarts += 1
            log.warning(
                "service %s failed (%s); restarting in %.1fs", state.name, state.last_error, delay
            )
            await anyio.sleep(delay)
            delay = min(delay * 2, self._max_backoff)
