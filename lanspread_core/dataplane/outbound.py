"""Outbound transfers as readers of a game, local mutations as writers.

Serving a game reads its files; an update or a removal rewrites them. A
writer must never touch disk while a reader is sending (the receiver would
get a mix of versions, or the sender a vanished file), so DESIGN §5 orders
it: mark the game busy, stop new transfers, cancel the live ones and wait
for them to end, and only then work. :class:`OutboundTransfers` is that
registry.

The race it closes: the data server registers a transfer *before* it asks
the runtime whether the game may be served. A writer marks the game busy and
then calls :meth:`OutboundTransfers.cancel_game`; a reader either registered
in time to be cancelled and waited for, or registers afterwards and finds the
game busy (or blocked). Both steps happen on the event loop without an await
in between, so there is no window in which a reader is unseen.

Each transfer runs inside its own :class:`anyio.CancelScope`, so cancelling
one game's transfers leaves every other game's alone.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio

from lanspread_core.dataplane.errors import TransferRefused

log = logging.getLogger(__name__)


#: an upload counts as current while it sent something this recently (seconds)
UPLOAD_RECENT = 3.0
#: the span its rate is measured over (seconds)
RATE_SPAN = 2.0


@dataclass(eq=False)
class OutboundTransfer:
    """One live transfer: cancel its ``scope``; ``ended`` is set once it has left."""

    game_id: str
    peer_id: str = ""
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    ended: anyio.Event = field(default_factory=anyio.Event)
    #: called with each range's bytes once sent (from the sending thread)
    on_sent: Callable[[int], None] = lambda n: None


class _Upload:
    """What one peer fetched of one game from here, and how fast lately."""

    def __init__(self) -> None:
        self.bytes = 0
        self.window: deque[tuple[float, int]] = deque()

    def add(self, n: int, now: float) -> None:
        self.bytes += n
        self.window.append((now, n))

    def rate(self, now: float) -> float:
        while self.window and now - self.window[0][0] > RATE_SPAN:
            self.window.popleft()
        return sum(n for _, n in self.window) / RATE_SPAN

    def last(self) -> float:
        return self.window[-1][0] if self.window else 0.0


class OutboundTransfers:
    """Live outbound transfers per game id, and the games blocked to new ones.

    :param on_count: called on the event loop with the total number of live
        transfers whenever it changes (the runtime publishes it as an
        ``outbound-transfers`` event). It must not raise or block.
    """

    def __init__(self, on_count: Callable[[int], None] | None = None) -> None:
        self._on_count = on_count
        self._live: dict[str, set[OutboundTransfer]] = {}
        self._blocked: Counter[str] = Counter()
        self._uploads: dict[tuple[str, str], _Upload] = {}
        self._uploads_lock = threading.Lock()

    @property
    def live_count(self) -> int:
        return sum(len(s) for s in self._live.values())

    def count(self, game_id: str) -> int:
        """Live transfers of ``game_id``."""
        return len(self._live.get(game_id, ()))

    def uploads(self) -> list[dict[str, Any]]:
        """Who fetched what from here lately: peer, game, bytes so far, rate (bytes/s)."""
        now = time.monotonic()
        with self._uploads_lock:
            current = [
                {
                    "peer_id": peer_id,
                    "game_id": game_id,
                    "bytes": up.bytes,
                    "rate": round(up.rate(now)),
                }
                for (peer_id, game_id), up in sorted(self._uploads.items())
                if now - up.last() <= UPLOAD_RECENT
            ]
        return current

    def _sent(self, peer_id: str, game_id: str, n: int) -> None:
        with self._uploads_lock:
            up = self._uploads.setdefault((peer_id, game_id), _Upload())
            up.add(n, time.monotonic())

    # -------------------------------------------------------------- writers
    def block(self, game_id: str) -> None:
        """Refuse new transfers of ``game_id`` until :meth:`unblock` (calls nest)."""
        self._blocked[game_id] += 1

    def unblock(self, game_id: str) -> None:
        if self._blocked[game_id] <= 1:
            del self._blocked[game_id]
        else:
            self._blocked[game_id] -= 1

    def is_blocked(self, game_id: str) -> bool:
        return self._blocked[game_id] > 0

    async def cancel_game(self, game_id: str) -> int:
        """Cancel every live transfer of ``game_id`` and wait until all have ended.

        Returns how many were cancelled. Block the game first, or a transfer
        starting meanwhile may be serving when this returns.
        """
        transfers = list(self._live.get(game_id, ()))
        for transfer in transfers:
            transfer.scope.cancel()
        for transfer in transfers:
            await transfer.ended.wait()
        if transfers:
            log.info("cancelled %d outbound transfer(s) of %s", len(transfers), game_id)
        return len(transfers)

    @asynccontextmanager
    async def exclusive(self, game_id: str) -> AsyncIterator[None]:
        """Block, cancel and wait for ``game_id``'s transfers; unblock on exit.

        The writer's side in one statement: ``async with outbound.exclusive(g):``.
        """
        self.block(game_id)
        try:
            await self.cancel_game(game_id)
            yield
        finally:
            self.unblock(game_id)

    # -------------------------------------------------------------- readers
    @asynccontextmanager
    async def register(self, game_id: str, peer_id: str = "") -> AsyncIterator[OutboundTransfer]:
        """Hold a live transfer of ``game_id`` for the duration of the block.

        The block runs inside the transfer's cancel scope: when a writer
        cancels the game, the block is cut short and ``async with`` carries
        on after it, as with any cancel scope.

        :raises TransferRefused: the game is blocked by a writer.
        """
        if self.is_blocked(game_id):
            raise TransferRefused(f"{game_id} is being changed on this peer and is not served now")
        transfer = OutboundTransfer(
            game_id, peer_id, on_sent=lambda n: self._sent(peer_id, game_id, n)
        )
        self._live.setdefault(game_id, set()).add(transfer)
        self._changed()
        try:
            with transfer.scope:
                yield transfer
        finally:
            live = self._live.get(game_id)
            if live is not None:
                live.discard(transfer)
                if not live:
                    del self._live[game_id]
            transfer.ended.set()
            self._changed()

    def _changed(self) -> None:
        if self._on_count is not None:
            try:
                self._on_count(self.live_count)
            except Exception:  # a broken listener must not break serving
                log.exception("the outbound-transfers listener failed")
