"""How fast a send must go: the stall timeout and the minimum rate.

A sending thread blocks in ``sendfile`` while its receiver's window is
full. It wakes every :data:`TICK` seconds (a send timeout) to ask its
:class:`Pace` whether to go on:

* a receiver that took nothing for ``stall_timeout`` seconds is dropped;
* once :data:`GRACE` seconds have passed, a receiver that took less than
  :data:`MIN_RATE` bytes per second over the last :data:`WINDOW` seconds is
  dropped *while other sends wait for a slot*: its slot serves someone
  faster. A slow receiver that keeps nobody waiting goes on.

The socket buffers swallow the first few megabytes at once, which is why the
rate is taken over a window that ends now, and not since the start: a reader
that takes 64 KiB every 20 s looks fast for its first seconds, and not after.
Blocking: used from the sending thread only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

#: Bytes per second a send must keep up while others wait (decimal: 256 kB/s).
MIN_RATE = 256_000
#: Seconds over which that rate is measured.
WINDOW = 5.0
#: Seconds from the start of a send before the rate counts.
GRACE = 5.0
#: How often a blocked send wakes to look at the clock.
TICK = 0.5


@dataclass(frozen=True)
class Pacing:
    """The minimum-rate rule: bytes per second over ``window`` seconds, counted
    from ``grace`` seconds into a send."""

    min_rate: float = MIN_RATE
    window: float = WINDOW
    grace: float = GRACE


PACING = Pacing()


class TooSlow(TimeoutError):
    """The receiver takes bytes too slowly, or not at all."""


class Pace:
    """The clock of one send.

    :param contended: whether other sends wait for a slot now.
    """

    def __init__(
        self,
        stall_timeout: float,
        contended: Callable[[], bool],
        pacing: Pacing = PACING,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stall = stall_timeout
        self._contended = contended
        self._min_rate = pacing.min_rate
        self._window = pacing.window
        self._grace = pacing.grace
        self._clock = clock
        self.start = self._last = clock()
        self.total = 0
        #: (time, total so far), newest last, reaching just past the window
        self._marks: deque[tuple[float, int]] = deque([(self.start, 0)])

    def sent(self, n: int) -> None:
        if n <= 0:
            return
        now = self._clock()
        self.total += n
        self._last = now
        self._marks.append((now, self.total))
        while len(self._marks) > 1 and self._marks[1][0] <= now - self._window:
            self._marks.popleft()

    def rate(self) -> float:
        """Bytes per second over the window (since the start while shorter)."""
        now = self._clock()
        since = max(now - self._window, self.start)
        base = 0
        for t, total in self._marks:
            if t > since:
                break
            base = total
        return (self.total - base) / max(now - since, 1e-9)

    def check(self) -> None:
        """:raises TooSlow: the receiver stalled, or is below the minimum rate
        while others wait."""
        now = self._clock()
        if now - self._last > self._stall:
            raise TooSlow(f"the receiver took nothing for {self._stall:g} s")
        if now - self.start < self._grace or not self._contended():
            return
        rate = self.rate()
        if rate < self._min_rate:
            raise TooSlow(
                f"the receiver took {rate / 1000:.1f} kB/s over {self._window:g} s, under"
                f" the {self._min_rate / 1000:g} kB/s a send must keep while others wait"
            )
