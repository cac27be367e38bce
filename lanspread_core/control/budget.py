"""The bytes of unfinished requests a control server holds, and how long for.

A request is one frame on its own stream, collected until the client ends the
stream. Without a bound, every connection could hold
:data:`~.config.MAX_STREAMS_PER_CONNECTION` unfinished frames of up to the
frame cap (8 MiB): 32 streams on one connection added 310 MiB. So the bytes
of requests in flight, from arrival to the end of their handling, come out
of a :class:`FrameBudget` shared by all connections, with a share per
connection; a stream that would go over it is refused ``busy`` and its bytes
dropped. And a stream must complete its frame within :data:`STREAM_DEADLINE`
seconds of its first byte, or it is refused ``timeout``: a client that starts
requests and never finishes them holds nothing for long.

Runs inside aioquic's callbacks, on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Bytes of requests in flight across all connections.
MAX_INFLIGHT_BYTES = 64 << 20
#: Bytes of requests in flight on one connection.
MAX_INFLIGHT_PER_CONNECTION = 16 << 20
#: Seconds from a request stream's first byte to its end.
STREAM_DEADLINE = 10.0


class FrameBudget:
    """The bytes all connections' requests hold now, against the bounds."""

    def __init__(
        self,
        *,
        total: int = MAX_INFLIGHT_BYTES,
        per_connection: int = MAX_INFLIGHT_PER_CONNECTION,
        deadline: float = STREAM_DEADLINE,
    ) -> None:
        self.total = total
        self.per_connection = per_connection
        self.deadline = deadline
        self.used = 0


class Ledger:
    """One connection's account: bytes per stream, and each stream's deadline.

    :param on_expire: called with a stream id whose frame did not complete
        within the deadline (the connection refuses the stream).
    """

    def __init__(self, budget: FrameBudget, on_expire: Callable[[int], None]) -> None:
        self._budget = budget
        self._on_expire = on_expire
        self._bytes: dict[int, int] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.held = 0

    def add(self, stream_id: int, n: int) -> str | None:
        """Count ``n`` more bytes of ``stream_id``; a refusal sentence when over a bound."""
        budget = self._budget
        if self.held + n > budget.per_connection:
            return (
                f"this connection's requests in flight would pass"
                f" {budget.per_connection // 1_000_000} MB; send fewer at once"
            )
        if budget.used + n > budget.total:
            return "this peer holds too many unfinished requests; try again soon"
        if stream_id not in self._bytes:
            self._bytes[stream_id] = 0
            loop = asyncio.get_running_loop()
            self._timers[stream_id] = loop.call_later(budget.deadline, self._expire, stream_id)
        self._bytes[stream_id] += n
        self.held += n
        budget.used += n
        return None

    def complete(self, stream_id: int) -> None:
        """The stream's frame arrived whole: no deadline; the bytes stay until released."""
        timer = self._timers.pop(stream_id, None)
        if timer is not None:
            timer.cancel()

    def release(self, stream_id: int) -> None:
        """The stream was answered, refused or reset: its bytes are free."""
        self.complete(stream_id)
        n = self._bytes.pop(stream_id, 0)
        self.held -= n
        self._budget.used -= n

    def release_all(self) -> None:
        for stream_id in list(self._bytes):
            self.release(stream_id)

    def _expire(self, stream_id: int) -> None:
        self._timers.pop(stream_id, None)
        self._on_expire(stream_id)
