"""Which chunk goes to which source peer, by measured throughput.

Workers pull: each source peer's worker asks for its next batch, sized to
about :data:`BATCH_SECONDS` of that peer's measured rate, so a fast peer takes
more chunks and a slow or failing one naturally takes fewer. As the queue
drains, a batch is also capped at the peer's share of what is left, so every
stream runs out of work at about the same moment. A chunk whose
bytes did not match its hash goes back to the queue, never to the same peer
again, and the peer earns a strike; too many strikes and it is dropped. Near
the end, an idle worker may take a chunk that another peer is still fetching
(end-game), so one slow peer cannot hold up the last few percent: the chunk
assigned most recently, which its holder will deliver last.

Every method runs on the event loop; workers report after each batch.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from lanspread_core.library.manifest import ChunkRange

BATCH_SECONDS = 1.0
MIN_BATCH = 1
MAX_BATCH = 64
MAX_ATTEMPTS = 5
MAX_STRIKES = 3
#: a new peer's assumed rate until measured (bytes/s): a LAN peer, 8 chunks a batch
START_RATE = 32 * 1024 * 1024
#: weight of the newest measurement in the moving average
ALPHA = 0.5


@dataclass
class Source:
    peer_id: str
    rate: float = START_RATE
    bytes: int = 0
    strikes: int = 0
    failed: str = ""
    busy: set[int] = field(default_factory=set)
    window: deque[tuple[float, int]] = field(default_factory=deque)

    def note(self, nbytes: int, seconds: float) -> None:
        if seconds > 0 and nbytes > 0:
            self.rate = ALPHA * (nbytes / seconds) + (1 - ALPHA) * self.rate
        self.bytes += nbytes
        self.window.append((time.monotonic(), nbytes))

    def recent_rate(self, span: float = 2.0) -> float:
        now = time.monotonic()
        while self.window and now - self.window[0][0] > span:
            self.window.popleft()
        return sum(n for _, n in self.window) / span


class DownloadFailed(Exception):
    pass


class Planner:
    def __init__(self, chunks: list[ChunkRange], peers: list[str], *, streams: int = 1) -> None:
        """:param streams: how many streams fetch from each peer at once."""
        self.chunks = chunks
        self.streams = streams
        self.pending: deque[int] = deque(range(len(chunks)))
        self.done: set[int] = set()
        self.attempts: dict[int, int] = {}
        self.excluded: dict[int, set[str]] = {}
        self.in_flight: dict[int, set[str]] = {}
        self.sources: dict[str, Source] = {p: Source(p) for p in peers}
        self.total = sum(c.length for c in chunks)
        self.fatal: str | None = None

    # ------------------------------------------------------------- queries
    @property
    def finished(self) -> bool:
        return len(self.done) == len(self.chunks)

    def live_sources(self) -> list[Source]:
        return [s for s in self.sources.values() if not s.failed]

    # ------------------------------------------------------------ planning
    def next_batch(self, peer_id: str, *, endgame: bool = True) -> list[int]:
        """Chunk indices for ``peer_id`` to fetch next; empty when nothing is left for it.

        :param endgame: when no chunk is pending, duplicate one another peer
            is still fetching.
        """
        source = self.sources[peer_id]
        if source.failed or self.fatal:
            return []
        target = source.rate * BATCH_SECONDS
        cap = min(MAX_BATCH, self._fair_share(source))
        batch: list[int] = []
        budget = 0
        skipped: list[int] = []
        while self.pending and len(batch) < cap and (len(batch) < MIN_BATCH or budget < target):
            index = self.pending.popleft()
            if index in self.done:
                continue
            if peer_id in self.excluded.get(index, ()):
                skipped.append(index)
                continue
            batch.append(index)
            budget += self.chunks[index].length
        self.pending.extendleft(reversed(skipped))
        if not batch and endgame:
            batch = self._endgame(peer_id)
        for index in batch:
            self.in_flight.setdefault(index, set()).add(peer_id)
            source.busy.add(index)
        return batch

    def _fair_share(self, source: Source) -> int:
        """Chunks this stream may take of those pending: its share of the rate."""
        total = sum(s.rate for s in self.live_sources()) * self.streams
        share = source.rate / total if total > 0 else 1.0
        return max(MIN_BATCH, math.ceil(len(self.pending) * share))

    def _endgame(self, peer_id: str) -> list[int]:
        """Duplicate the chunk another peer will deliver last, if any."""
        for index, holders in reversed(self.in_flight.items()):
            if index in self.done or peer_id in holders:
                continue
            if peer_id in self.excluded.get(index, ()):
                continue
            return [index]
        return []

    # ------------------------------------------------------------- results
    def chunk_ok(self, peer_id: str, index: int) -> None:
        self.done.add(index)
        self._release(peer_id, index)

    def chunk_bad(self, peer_id: str, index: int) -> None:
        """The bytes did not match the hash: retry elsewhere, penalise the peer."""
        source = self.sources[peer_id]
        source.strikes += 1
        self.excluded.setdefault(index, set()).add(peer_id)
        self._release(peer_id, index)
        self._retry(index)
        if source.strikes >= MAX_STRIKES:
            self.source_failed(peer_id, f"sent {source.strikes} corrupt chunks")

    def unfinished(self, peer_id: str, indices: list[int]) -> None:
        """A batch ended early (connection lost, cancelled): its rest goes back."""
        for index in indices:
            self._release(peer_id, index)
            if index not in self.done and not self.in_flight.get(index):
                self._retry(index)

    def source_failed(self, peer_id: str, why: str) -> None:
        source = self.sources[peer_id]
        if not source.failed:
            source.failed = why or "failed"
        self.unfinished(peer_id, sorted(source.busy))

    def _release(self, peer_id: str, index: int) -> None:
        self.sources[peer_id].busy.discard(index)
        holders = self.in_flight.get(index)
        if holders is not None:
            holders.discard(peer_id)
            if not holders:
                del self.in_flight[index]

    def _retry(self, index: int) -> None:
        if index in self.done or index in self.pending:
            return
        self.attempts[index] = self.attempts.get(index, 0) + 1
        if self.attempts[index] > MAX_ATTEMPTS:
            self.fatal = f"chunk {index} of {self.chunks[index].path} failed {MAX_ATTEMPTS} times"
            return
        self.pending.appendleft(index)
