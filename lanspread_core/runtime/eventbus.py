"""Fan-out of runtime events to every front-end, never stalled by a slow one.

Each subscriber has a bounded buffer. When it is full the oldest events are
dropped and the subscriber receives a ``events-dropped`` event in their
place, so a front-end knows to reconcile from the next full snapshot (every
library event carries the complete set of active operations for that reason).
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator

import anyio

from lanspread_core.events import Event, EventsDropped


class Subscription:
    def __init__(self, bus: EventBus, maxlen: int) -> None:
        self._bus = bus
        self._buf: collections.deque[Event] = collections.deque()
        self._maxlen = maxlen
        self._dropped = 0
        self._ready = anyio.Event()
        self.closed = False

    def _push(self, event: Event) -> None:
        if len(self._buf) >= self._maxlen:
            self._buf.popleft()
            self._dropped += 1
        self._buf.append(event)
        self._ready.set()

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self._bus._subs.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        while not self._buf:
            if self.closed:
                raise StopAsyncIteration
            self._ready = anyio.Event()
            await self._ready.wait()
        if self._dropped:
            dropped, self._dropped = self._dropped, 0
            return EventsDropped(dropped)
        return self._buf.popleft()


class EventBus:
    def __init__(self, maxlen: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self._maxlen = maxlen

    def subscribe(self) -> Subscription:
        sub = Subscription(self, self._maxlen)
        self._subs.add(sub)
        return sub

    def publish(self, event: Event) -> None:
        """Non-blocking; call from the event loop thread only."""
        for sub in list(self._subs):
            sub._push(event)

    def close(self) -> None:
        for sub in list(self._subs):
            sub.close()
