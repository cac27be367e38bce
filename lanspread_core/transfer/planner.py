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

Sources may be partial (swarming): a peer that is downloading the same game
holds only some chunks, its *have-set*, which grows as it goes. Each chunk
is taken from any source that has it, rarest first: among the chunks a
source could send, it is asked for those the fewest live sources hold, so
the first holder's uplink goes to what nobody else has yet. Ties are broken
from a random start, so a crowd starting together does not all ask the seed
for chunk 0.

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
#: end-game: how many sources may fetch one chunk at once
MAX_COPIES = 2
#: a new peer's assumed rate until measured (bytes/s): one chunk in the first batch,
#: so a crowd starting together does not queue the whole game on the seed at once;
#: the measured rate takes over after the first batch (a 1 Gbit link: ~2 batches)
START_RATE = 4 * 1024 * 1024
#: chunks in flight from a seed the crowd shares (see _allowance): each of a crowd
#: asking for one at a time gets its chunk soonest (two each: 7.1 s against 6.8 s
#: for eight receivers in the lab)
SEED_ALLOWANCE = 1
#: weight of the newest measurement in the moving average
ALPHA = 0.5


@dataclass
class Source:
    peer_id: str
    rate: float = START_RATE
    #: bytes this source delivered that verified first (they sum to the game)
    bytes: int = 0
    #: bytes that verified but another source had already delivered (end-game)
    duplicate: int = 0
    #: the chunks it holds; None: all of them (a peer with the whole game)
    have: frozenset[int] | None = None
    #: the chunks it is fetching itself (a partial source): soon held
    fetching: frozenset[int] = frozenset()
    #: a batch from it has been timed (until then, one chunk at a time)
    measured: bool = False
    #: it refused or broke lately: others do not count on it for now
    cooling: bool = False
    strikes: int = 0
    failed: str = ""
    busy: set[int] = field(default_factory=set)
    window: deque[tuple[float, int]] = field(default_factory=deque)

    def note(self, nbytes: int, seconds: float) -> None:
        if seconds > 0 and nbytes > 0:
            if not self.measured:  # the first measurement replaces the guess
                self.rate = nbytes / seconds
            self.rate = ALPHA * (nbytes / seconds) + (1 - ALPHA) * self.rate
            self.measured = True
        self.window.append((time.monotonic(), nbytes))

    def holds(self, index: int) -> bool:
        return self.have is None or index in self.have

    def recent_rate(self, span: float = 2.0) -> float:
        now = time.monotonic()
        while self.window and now - self.window[0][0] > span:
            self.window.popleft()
        return sum(n for _, n in self.window) / span


class DownloadFailed(Exception):
    pass


class Planner:
    def __init__(
        self,
        chunks: list[ChunkRange],
        peers: list[str],
        *,
        streams: int = 1,
        done: set[int] | None = None,
        order: list[int] | None = None,
    ) -> None:
        """:param streams: how many streams fetch from each peer at once.
        :param done: chunks already verified on disk (a resumed download).
        :param order: the order chunks are asked for in (a download shuffles
            it, so a crowd starting together spreads over the game); default:
            the manifest's."""
        self.chunks = chunks
        self.streams = streams
        self.done: set[int] = set(done or ())
        self.pending: deque[int] = deque(
            i for i in (order if order is not None else range(len(chunks))) if i not in self.done
        )
        self.attempts: dict[int, int] = {}
        self.excluded: dict[int, set[str]] = {}
        self.in_flight: dict[int, set[str]] = {}
        self.sources: dict[str, Source] = {p: Source(p) for p in peers}
        #: (peer, chunk) -> until when not to ask that peer for that chunk
        self.deferred: dict[tuple[str, int], float] = {}
        self.total = sum(c.length for c in chunks)
        self.fatal: str | None = None

    # ------------------------------------------------------------- sources
    def add_source(self, peer_id: str, have: frozenset[int] | None = None) -> None:
        """A peer that joined the download (a new holder, often a partial one)."""
        if peer_id not in self.sources:
            self.sources[peer_id] = Source(peer_id, have=have)

    def set_have(
        self, peer_id: str, have: frozenset[int] | None, fetching: frozenset[int] = frozenset()
    ) -> None:
        """What a partial source holds now (its have-map grows as it downloads), and
        what it is fetching."""
        source = self.sources.get(peer_id)
        if source is not None:
            source.have = have
            source.fetching = fetching

    def defer(self, peer_id: str, indices: list[int], seconds: float) -> None:
        """Do not ask ``peer_id`` for ``indices`` for a while (a seed said another
        peer just got them: they come from that peer instead)."""
        until = time.monotonic() + seconds
        for index in indices:
            self.deferred[(peer_id, index)] = until
            self._release(peer_id, index)
            if index not in self.done and index not in self.pending:
                self.pending.appendleft(index)  # not a failed attempt: no retry counted

    def rarity(self, index: int) -> int:
        """How many live sources hold chunk ``index``, or are fetching it."""
        return sum(
            1
            for s in self.sources.values()
            if not s.failed and (s.holds(index) or index in s.fetching)
        )

    def starved(self) -> list[int]:
        """Chunks still needed that no live source may send and none is fetching."""
        live = self.live_sources()
        return [
            i
            for i in range(len(self.chunks))
            if i not in self.done
            and not self.in_flight.get(i)
            and not any(s.holds(i) and s.peer_id not in self.excluded.get(i, ()) for s in live)
        ]

    @property
    def done_bytes(self) -> int:
        return sum(self.chunks[i].length for i in self.done)

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
        crowd = self._seeding_a_crowd(source)
        room = self._allowance(source, crowd) - len(source.busy)
        if room <= 0:
            return []
        target = source.rate * BATCH_SECONDS
        cap = 1 if crowd else min(MAX_BATCH, self._fair_share(source), room)
        batch = self._rarest(source, cap, target)
        # end-game only at the very end: while chunks wait for a holder, an idle
        # stream of a partial source duplicating others' work would only burn uplinks;
        # and never on a seed the crowd shares (its uplink carries the new chunks)
        if not batch and endgame and not self.pending and not crowd:
            batch = self._endgame(peer_id)
        for index in batch:
            self.in_flight.setdefault(index, set()).add(peer_id)
            source.busy.add(index)
        return batch

    def _rarest(self, source: Source, cap: int, target: float) -> list[int]:
        """Up to ``cap`` chunks (about ``target`` bytes) ``source`` can send, rarest
        first, in pending order among equals; taken out of ``pending``."""
        peer_id = source.peer_id
        now = time.monotonic()
        candidates = [
            i
            for i in self.pending
            if i not in self.done
            and source.holds(i)
            and peer_id not in self.excluded.get(i, ())
            and self.deferred.get((peer_id, i), 0.0) <= now
        ]
        partials = [
            s
            for s in self.live_sources()
            if (s.have is not None or s.fetching) and s is not source and not s.cooling
        ]
        if source.have is None and partials:
            # a whole source in a swarm ships what no partial one holds or is
            # fetching: its uplink is the one that carries new chunks to the crowd
            candidates = [
                i for i in candidates if not any(s.holds(i) or i in s.fetching for s in partials)
            ]
        if not candidates:
            return []
        rarity = {i: self.rarity(i) for i in candidates} if partials else {}
        rarest = min(rarity.values()) if rarity else 0
        batch: list[int] = []
        budget = 0
        for index in candidates:
            if len(batch) >= cap or (len(batch) >= MIN_BATCH and budget >= target):
                break
            if rarity and rarity[index] != rarest:
                continue
            batch.append(index)
            budget += self.chunks[index].length
        taken = set(batch)
        self.pending = deque(i for i in self.pending if i not in taken and i not in self.done)
        return batch

    def _seeding_a_crowd(self, source: Source) -> bool:
        """``source`` holds the whole game and others download it too."""
        return source.have is None and any(s.have is not None for s in self.live_sources())

    def _allowance(self, source: Source, crowd: bool) -> int:
        """How many chunks may be in flight from ``source`` at once, over all its
        streams: what it delivers in two batch periods (one arriving, one asked
        ahead), and one until it has been measured. A seed shared by a crowd is
        slow for each of them, so each keeps one chunk queued there, and asks
        again for what is still rarest when it lands, instead of queuing most of
        the game on the seed before anyone could share a chunk. A fast link is
        not held back: 1 Gbit allows about 56 chunks."""
        if not source.measured:
            return 1
        if crowd:  # see _seeding_a_crowd
            return SEED_ALLOWANCE
        chunk = self.chunks[0].length if self.chunks else 1
        return max(1, math.ceil(2 * source.rate * BATCH_SECONDS / max(1, chunk)))

    def _fair_share(self, source: Source) -> int:
        """Chunks this stream may take of those pending: its share of the rate."""
        total = sum(s.rate for s in self.live_sources()) * self.streams
        share = source.rate / total if total > 0 else 1.0
        return max(MIN_BATCH, math.ceil(len(self.pending) * share))

    def _endgame(self, peer_id: str) -> list[int]:
        """Duplicate the chunk another peer will deliver last, if any."""
        source = self.sources[peer_id]
        for index, holders in reversed(self.in_flight.items()):
            if index in self.done or peer_id in holders or not source.holds(index):
                continue
            if len(holders) >= MAX_COPIES:
                continue
            if peer_id in self.excluded.get(index, ()):
                continue
            return [index]
        return []

    # ------------------------------------------------------------- results
    def chunk_ok(self, peer_id: str, index: int) -> bool:
        """A verified chunk from ``peer_id``; True when it was the first copy."""
        first = index not in self.done
        self.done.add(index)
        source = self.sources[peer_id]
        if first:
            source.bytes += self.chunks[index].length
        else:
            source.duplicate += self.chunks[index].length
        self._release(peer_id, index)
        return first

    def chunk_bad(self, peer_id: str, index: int) -> None:
        """The bytes did not match the hash: retry elsewhere, penalise the peer."""
        source = self.sources[peer_id]
        source.strikes += 1
        self.excluded.setdefault(index, set()).add(peer_id)
        self._release(peer_id, index)
        self._retry(index)
        if source.strikes >= MAX_STRIKES:
            self.source_failed(peer_id, f"sent {source.strikes} corrupt chunks")

    def unfinished(self, peer_id: str, indices: list[int], *, counted: bool = True) -> None:
        """A batch ended early (connection lost, cancelled): its rest goes back.

        :param counted: it counts as a failed attempt at those chunks (not when
            the source merely refused for now: a busy or changing peer)."""
        for index in indices:
            self._release(peer_id, index)
            if index not in self.done and not self.in_flight.get(index):
                if counted:
                    self._retry(index)
                elif index not in self.pending:
                    self.pending.appendleft(index)

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
