"""Send slots shared fairly between the peers that want them.

A send holds a worker thread for as long as its receiver takes bytes, so the
number of sends at once is bounded (:data:`MAX_SENDS`). A single global
limit let one peer that opened many slow connections hold every slot while
honest downloads waited and failed. Here each peer may hold at most its
*fair share*, ``max(MIN_SHARE, total // active peers)``, where a peer is
active while it holds or waits for a slot, and for :data:`RECENT` seconds
after it last held one: a downloader between two grants (one ended, its
next request not yet here) still counts, or the others' share would grow to
every slot in that instant and it would queue behind them. A slot that frees goes to the
waiting peer that holds the fewest, so a newcomer is served before a peer
that already has many. A peer alone may use every slot: nobody waits.

A connection that has its next request waiting when a send ends keeps its
slot for it, unless its peer holds more than its share: a pipelining
downloader would otherwise lose its slot between two grants to whoever
waits, and queue again behind them. Slots already held are not taken back
when a newcomer arrives; the minimum
rate (:mod:`~lanspread_core.dataplane.pace`) cuts a sender that keeps others
waiting while its receiver takes almost nothing, which frees the slot.

Everything here runs on the event loop; :attr:`FairSlots.waiting` may be
read from a sending thread (one int).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

#: Sends running at once (each holds a worker thread).
MAX_SENDS = 32
#: The fewest slots a peer may hold while others wait, however many are active.
MIN_SHARE = 2
#: Seconds a peer still counts as active after it last held a slot.
RECENT = 2.0


@dataclass(eq=False)
class _Waiter:
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class FairSlots:
    """At most ``total`` slots held at once, shared fairly by peer."""

    def __init__(
        self,
        total: int = MAX_SENDS,
        *,
        min_share: int = MIN_SHARE,
        recent: float = RECENT,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total < 1:
            raise ValueError("at least one send slot is needed")
        self.total = total
        self._min_share = min_share
        self._recent = recent
        self._clock = clock
        #: when each peer last released a slot (kept while recent)
        self._released: dict[str, float] = {}
        self._held: Counter[str] = Counter()
        self._queues: dict[str, deque[_Waiter]] = {}
        #: sends waiting for a slot, all peers together
        self.waiting = 0

    def held(self, peer_id: str) -> int:
        return self._held[peer_id]

    def share(self) -> int:
        """The most one peer may hold now."""
        now = self._clock()
        for peer_id in [p for p, t in self._released.items() if now - t > self._recent]:
            del self._released[peer_id]
        active = len(self._held.keys() | self._queues.keys() | self._released.keys())
        return max(self._min_share, self.total // max(1, active))

    def may_keep(self, peer_id: str) -> bool:
        """Whether ``peer_id`` may keep a slot it holds for its next send rather
        than queue again: it holds no more than its share."""
        return self._held[peer_id] <= self.share()

    @asynccontextmanager
    async def slot(self, peer_id: str) -> AsyncIterator[None]:
        """Hold one of ``peer_id``'s slots for the duration of the block."""
        await self.acquire(peer_id)
        try:
            yield
        finally:
            self.release(peer_id)

    async def acquire(self, peer_id: str) -> None:
        """Wait for one of ``peer_id``'s slots; :meth:`release` it when done."""
        waiter = _Waiter()
        self._queues.setdefault(peer_id, deque()).append(waiter)
        self.waiting += 1
        self._dispatch()
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self.release(peer_id)
            else:
                self._drop(peer_id, waiter)
            raise

    def _drop(self, peer_id: str, waiter: _Waiter) -> None:
        queue = self._queues.get(peer_id)
        if queue is not None and waiter in queue:
            queue.remove(waiter)
            self.waiting -= 1
            if not queue:
                del self._queues[peer_id]
        self._dispatch()  # a smaller crowd can make another waiter eligible

    def release(self, peer_id: str) -> None:
        self._released[peer_id] = self._clock()
        self._held[peer_id] -= 1
        if self._held[peer_id] <= 0:
            del self._held[peer_id]
        self._dispatch()

    def _dispatch(self) -> None:
        while sum(self._held.values()) < self.total:
            share = self.share()
            eligible = [p for p in self._queues if self._held[p] < share]
            if not eligible:
                return
            peer_id = min(eligible, key=lambda p: self._held[p])
            queue = self._queues[peer_id]
            waiter = queue.popleft()
            if not queue:
                del self._queues[peer_id]
            self.waiting -= 1
            self._held[peer_id] += 1
            waiter.granted = True
            waiter.event.set()
