"""Say a repeated thing once a while: refusals logged once per cause and peer.

A flood of refusals (a full connection table, an attacker's thousand
connections) must not become a flood of log lines. :class:`OncePer` answers
whether a key was last said long enough ago; it remembers a bounded number
of keys.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable

#: Seconds between two records of the same cause and peer.
INTERVAL = 60.0
#: Keys remembered; past it, those said longer ago than the interval are forgotten.
MAX_KEYS = 1024


class OncePer:
    """``once(key)`` is True at most once per ``interval`` seconds for each key."""

    def __init__(
        self,
        interval: float = INTERVAL,
        *,
        max_keys: int = MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval = interval
        self._max_keys = max_keys
        self._clock = clock
        self._said: dict[Hashable, float] = {}

    def __call__(self, key: Hashable) -> bool:
        now = self._clock()
        last = self._said.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self._said) >= self._max_keys:
            self._said = {k: t for k, t in self._said.items() if now - t < self.interval}
            if len(self._said) >= self._max_keys:  # all recent: drop the oldest half
                keep = sorted(self._said.items(), key=lambda kv: kv[1])[self._max_keys // 2 :]
                self._said = dict(keep)
        self._said[key] = now
        return True
