"""The bytes of unfinished requests a control server holds, and how long for.

A request is one frame on its own stream, collected until the client ends the
stream. Without a bound, every connection could hold
:data:`~.config.MAX_STREAMS_PER_CONNECTION` unfinished frames of up to the
frame cap (8 MiB): 32 streams on one connection added 310 MiB. So the bytes
of requests in flight, from arrival to the end of their handling, come out
of a :class:`FrameBudget` shared by all connections, with a share per
connection. A stream that would take its connection over its share is
refused ``busy`` and its bytes dropped. When all connections together would
go over the total, the biggest unfinished stream anywhere is refused to make
room (or the new bytes, when their stream is the biggest): honest requests
are small and arrive whole in a packet or two, so a crowd of half-sent
frames cannot lock them out. And a stream must complete its frame within
:data:`STREAM_DEADLINE` seconds of its first byte, or it is refused
``timeout``: a client that starts requests and never finishes them holds
nothing for long.

Runs inside aioquic's callbacks, on the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

#: Called to refuse a stream: its id, the Error code and the sentence.
Refuse = Callable[[int, str, str], None]

#: Bytes of requests in flight across all connections.
MAX_INFLIGHT_BYTES = 48_000_000
#: Bytes of requests in flight on one connection.
MAX_INFLIGHT_PER_CONNECTION = 16_000_000
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
        self.ledgers: set[Ledger] = set()

    def make_room(self, n: int, asking: int) -> bool:
        """Refuse the biggest unfinished streams anywhere until ``n`` more bytes
        fit; False when none is bigger than ``asking`` (the asking stream's
        size with them), which is then the one to refuse."""
        while self.used + n > self.total:
            biggest: tuple[int, Ledger, int] | None = None
            for ledger in self.ledgers:
                for stream_id, held in ledger.unfinished():
                    if held > asking and (biggest is None or held > biggest[0]):
                        biggest = (held, ledger, stream_id)
            if biggest is None:
                return False
            _, ledger, stream_id = biggest
            ledger.refuse(stream_id, "busy", "this peer held too many unfinished requests")
            ledger.release(stream_id)  # whatever the connection did with it
        return True


class Ledger:
    """One connection's account: bytes per stream, and each stream's deadline.

    :param refuse: refuses a stream (the connection answers it with an Error
        and stops it, which releases its bytes here): one whose frame did not
        complete within the deadline, or the biggest when room is needed.
        Call :meth:`close` when the connection ends.
    """

    def __init__(self, budget: FrameBudget, refuse: Refuse) -> None:
        self._budget = budget
        self.refuse = refuse
        self._bytes: dict[int, int] = {}
        self._timers: dict[int, asyncio.TimerHandle] = {}
        self.held = 0
        budget.ledgers.add(self)

    def unfinished(self) -> list[tuple[int, int]]:
        """(stream id, bytes) of the streams still receiving their frame."""
        return [(sid, self._bytes[sid]) for sid in self._timers]

    def add(self, stream_id: int, n: int) -> str | None:
        """Count ``n`` more bytes of ``stream_id``; a refusal sentence when over a bound."""
        budget = self._budget
        if self.held + n > budget.per_connection:
            return (
                f"this connection's requests in flight would pass"
                f" {budget.per_connection / 1e6:g} MB; send fewer at once"
            )
        if budget.used + n > budget.total and not budget.make_room(
            n, self._bytes.get(stream_id, 0) + n
        ):
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

    def close(self) -> None:
        """The connection ended: every stream's bytes are free."""
        for stream_id in list(self._bytes):
            self.release(stream_id)
        self._budget.ledgers.discard(self)

    def _expire(self, stream_id: int) -> None:
        self.refuse(
            stream_id, "timeout", "the request did not arrive whole within the stream deadline"
        )
        self.release(stream_id)  # whatever the connection did with it
