"""Running operations: one per game, with lifecycle events and progress.

:class:`OperationRunner` starts an operation's body in the peer's task
group, publishes its ``begin`` and exactly one ending (``finished``,
``cancelled``, ``failed``, or ``all-peers-gone`` when every source left),
keeps the cancel token a ``cancel`` command sets, and hands worker threads a
progress callback that publishes at most four events a second. When the peer
stops, :meth:`OperationRunner.stop_all` cancels every operation and waits a
bounded time for them to roll back: an unpack is cancelled between blocks,
never waited for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.abc

from lanspread_core.archive.cancel import CancelToken
from lanspread_core.errors import Cancelled, CommandError, LanspreadError
from lanspread_core.events import (
    Event,
    OpAllPeersGone,
    OpBegin,
    OpCancelled,
    OpFailed,
    OpFinished,
    OpKind,
    OpProgress,
)
from lanspread_core.library.operations import OperationTable
from lanspread_core.transfer.sources import AllSourcesGone

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25
#: Seconds a stopping peer waits for its cancelled operations to roll back
#: (they take milliseconds); shutdown as a whole must end within 2 s.
STOP_GRACE = 1.0

Result = dict[str, Any]
OperationBody = Callable[[CancelToken], Awaitable[Result]]
Progress = Callable[[int, int], None]


class OperationRunner:
    """Operations of a running peer; ``publish`` runs on the event loop."""

    def __init__(self, ops: OperationTable, publish: Callable[[Event], None]) -> None:
        self.ops = ops
        self.publish = publish
        self.cancels: dict[str, CancelToken] = {}
        self._discard: set[str] = set()
        self._running: dict[str, anyio.Event] = {}
        self._stopping = False
        self._tg: anyio.abc.TaskGroup | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, tg: anyio.abc.TaskGroup) -> None:
        """Run operations in ``tg``, the peer's own task group."""
        self._tg = tg
        self._loop = asyncio.get_running_loop()

    def publish_threadsafe(self, event: Event) -> None:
        """Publish from a worker thread (the bus is the loop's)."""
        assert self._loop is not None
        with contextlib.suppress(RuntimeError):  # the loop has closed: nobody is listening
            self._loop.call_soon_threadsafe(self.publish, event)

    def progress(self, kind: OpKind, game_id: str, active_peers: int = 0) -> Progress:
        """A progress callback for worker threads: at most 4 events a second."""
        last = 0.0
        started = time.monotonic()

        def progress(done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL or done == total:
                last = now
                rate = done / max(1e-6, now - started)
                eta = round((total - done) / rate, 1) if rate > 0 else None
                self.publish_threadsafe(
                    OpProgress(kind, game_id, done, total, round(rate), eta, active_peers)
                )

        return progress

    def cancel(self, game_id: str, *, discard: bool = False) -> bool:
        """Ask the operation on ``game_id`` to stop; False when none runs.

        :param discard: a download then removes what it fetched instead of
            keeping it for a resume.
        """
        token = self.cancels.get(game_id)
        if token is None:
            return False
        if discard:
            self._discard.add(game_id)
        token.cancel()
        return True

    def discarding(self, game_id: str) -> bool:
        """Whether the operation on ``game_id`` was cancelled with ``discard``."""
        return game_id in self._discard

    async def stop_all(self, grace: float = STOP_GRACE) -> list[str]:
        """Cancel every operation, refuse new ones, and wait up to ``grace`` s for them to end.

        Each ends as it does on ``cancel``: an unpack stops between blocks and
        rolls back, a download keeps its verified chunks. Returns the game ids
        still running after ``grace`` (startup recovery finishes those).
        """
        self._stopping = True
        for token in self.cancels.values():
            token.cancel()
        with anyio.move_on_after(grace):
            for done in list(self._running.values()):
                await done.wait()
        return sorted(self._running)

    async def run(self, kind: OpKind, game_id: str, body: OperationBody, wait: bool) -> Result:
        """Run one operation on ``game_id`` with lifecycle events; optionally wait for it."""
        if self._stopping:
            raise CommandError("the peer is stopping; start the operation after it restarts")
        if self.ops.kind_of(game_id) or game_id in self.cancels:
            raise CommandError(f"{game_id} is busy with {self.ops.kind_of(game_id) or 'work'}")
        assert self._tg is not None, "OperationRunner.attach() first"
        token = CancelToken()
        self.cancels[game_id] = token
        done = anyio.Event()
        self._running[game_id] = done
        result: Result = {}

        async def runner() -> None:
            nonlocal result
            base: Result = {"game_id": game_id, "op": str(kind)}
            self.publish(OpBegin(kind, game_id))
            try:
                result = {**base, **(await body(token))}
                self.publish(OpFinished(kind, game_id, result))
            except Cancelled:
                error = f"{kind} of {game_id} was cancelled"
                result = {**base, "error": error, "cancelled": True}
                self.publish(OpCancelled(kind, game_id, error))
            except LanspreadError as exc:
                result = {**base, "error": str(exc)}
                # one ending per operation: all-peers-gone is a kind of failure
                ending = OpAllPeersGone if isinstance(exc, AllSourcesGone) else OpFailed
                self.publish(ending(kind, game_id, str(exc)))
            except Exception as exc:  # a bug must not take the peer down
                log.exception("%s of %s failed", kind, game_id)
                result = {**base, "error": f"internal error: {exc}"}
                self.publish(OpFailed(kind, game_id, result["error"]))
            finally:
                self.cancels.pop(game_id, None)
                self._discard.discard(game_id)
                self._running.pop(game_id, None)
                done.set()

        self._tg.start_soon(runner)
        if not wait:
            return {"game_id": game_id, "op": str(kind), "started": True}
        await done.wait()
        if "error" in result:
            raise CommandError(result["error"])
        return result
