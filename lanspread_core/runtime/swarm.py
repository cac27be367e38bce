"""Swarming: serving games in part while downloading them, and seeding a crowd.

While a download runs, its verified chunks are listed in this peer's library
as a partial game (the agreed manifest's hash and a have-map), so peers that
download the same game at the same version fetch those chunks from here too
and the first holder's uplink goes to what nobody else has yet. Only
verified chunks are granted, only of the agreed manifest, and never
``local/``: a grant names exact chunks, each checked against the verified
set when it is issued and again when its connection arrives.

A peer holding the whole game seeds a crowd one chunk to one peer
(:class:`Seeding`): while chunks of a game nobody was sent lately remain, it
does not send another peer a chunk it sent a moment ago, and answers
``taken``; the downloader then asks for another chunk, and gets that one from
the peer that has it by now. So the seed's uplink carries each chunk about
once and the crowd carries the copies.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lanspread_core.dataplane.tokens import Grant
from lanspread_core.library.manifest import ChunkRange, Manifest, chunk_ranges
from lanspread_core.library.served import ServedLibrary
from lanspread_core.wire import havemap
from lanspread_core.wire.messages import ByteRange, GameInfo


@dataclass
class _Partial:
    version: str
    manifest: Manifest
    chunks: list[ChunkRange]
    by_start: dict[tuple[str, int], int]
    verified: frozenset[int] = field(default_factory=frozenset)
    #: when its have-map was last announced (monotonic; 0: not yet)
    announced: float = 0.0


#: how long a chunk sent to one peer counts as on its way to the crowd (seconds):
#: a 4 MiB chunk from a seed shared eight ways takes ~3 s, then ~1 s to be listed
TAKEN_FOR = 8.0
#: a downloading peer pings the others with its new chunks at most this often
#: (seconds; the first at once): a ping to every peer costs each side QUIC work in
#: Python, and its grants carry its have-map in between (TransferGrant.have)
ANNOUNCE_EVERY = 0.5
#: ... and at most this many such pings a second in all (0.5 s apart for eight
#: peers): with more peers each is told less often, so a peer's control-plane
#: work does not grow with the party (16 receivers: 14.9-18.6 s, against
#: 21.7-24.7 s with every peer told every 0.5 s)
ANNOUNCE_RATE = 16.0
#: chunks a seed sends one peer of a crowd per request
CROWD_GRANT = 1


@dataclass(frozen=True)
class Claim:
    """What a seed sends one asker now: positions in the asked ranges."""

    granted: tuple[int, ...]
    #: went to another peer a moment ago: the asker fetches them from there
    taken: tuple[int, ...]
    #: why nothing is granted ("" when something is)
    why: str = ""


class Seeding:
    """Which chunks of each whole game went to which peer, lately."""

    def __init__(self, taken_for: float = TAKEN_FOR) -> None:
        self.taken_for = taken_for
        self._sent: dict[str, dict[tuple[str, int], tuple[float, str]]] = {}

    def claim(
        self,
        game_id: str,
        peer_id: str,
        ranges: Sequence[ByteRange],
        chunks: Callable[[], int],
        present: Callable[[str], bool] = lambda _peer: True,
    ) -> Claim:
        """Which of ``ranges`` of ``game_id`` (``chunks()`` in all, counted only
        when a range is taken) to send ``peer_id`` now, recorded as sent.
        ``present`` tells whether a peer is still here.

        While chunks remain that nobody was sent lately, a range another peer
        got lately is taken. When others take chunks too (a crowd), an asker
        gets :data:`CROWD_GRANT` new chunks at a time: a long queue for one
        peer would keep those chunks from the crowd while the uplink is shared,
        where one at a time reaches a peer soonest and is passed on from there.
        """
        now = time.monotonic()
        sent = self._sent.setdefault(game_id, {})
        # a chunk sent to a peer that has left is on its way to nobody
        for key in [
            k for k, (at, who) in sent.items() if now - at > self.taken_for or not present(who)
        ]:
            del sent[key]
        taken = tuple(
            k
            for k, r in enumerate(ranges)
            if (hit := sent.get((r.path, r.offset))) and hit[1] != peer_id
        )
        if taken and len(sent) >= chunks():
            taken = ()  # every chunk went out lately: copies are what is left to send
        skip = set(taken)
        free = [k for k in range(len(ranges)) if k not in skip]
        if any(who != peer_id for _, who in sent.values()):
            free = free[:CROWD_GRANT]
        if not free:
            r = ranges[taken[0]]
            why = (
                f"{r.path} at {r.offset} went to another peer just now;"
                " fetch it from there, or another chunk from here"
            )
            return Claim((), taken, why)
        for k in free:
            sent[(ranges[k].path, ranges[k].offset)] = (now, peer_id)
        return Claim(tuple(free), taken)


class Swarm:
    """Partial games by id; ``announce`` runs when what this peer serves changed."""

    def __init__(
        self,
        served: ServedLibrary,
        announce: Callable[[], None],
        audience: Callable[[], int] = lambda: 0,
    ) -> None:
        """:param announce: pings every known peer with this peer's news.
        :param audience: how many peers that is."""
        self._served = served
        self._announce = announce
        self._audience = audience
        self._games: dict[str, _Partial] = {}
        self.seeding = Seeding()

    def update(
        self,
        game_id: str,
        version: str,
        manifest: Manifest,
        verified: frozenset[int],
        fetching: frozenset[int] = frozenset(),
    ) -> None:
        """The download of ``game_id`` has verified ``verified`` and is fetching
        ``fetching`` (chunk indices)."""
        entry = self._games.get(game_id)
        if entry is None or entry.manifest.manifest_hash != manifest.manifest_hash:
            chunks = chunk_ranges(manifest)
            by_start = {(c.path, c.offset): i for i, c in enumerate(chunks)}
            entry = self._games[game_id] = _Partial(version, manifest, chunks, by_start)
        entry.verified = verified
        if not verified:
            return  # nothing to offer yet
        n = len(entry.chunks)
        info = GameInfo(
            game_id,
            version,
            manifest.total_size,
            manifest.manifest_hash,
            havemap.encode(verified, n),
            havemap.encode(fetching - verified, n) if fetching else "",
        )
        if self._served.set_partial(game_id, info):
            now = time.monotonic()
            every = max(ANNOUNCE_EVERY, self._audience() / ANNOUNCE_RATE)
            if not entry.announced or now - entry.announced >= every:
                entry.announced = now
                self._announce()

    def end(self, game_id: str) -> None:
        """The download stopped (finished, paused or failed): serve none of it now."""
        self._games.pop(game_id, None)
        if self._served.set_partial(game_id, None):
            self._announce()

    def manifest(self, game_id: str) -> Manifest | None:
        entry = self._games.get(game_id)
        return entry.manifest if entry is not None else None

    def refusal(self, game_id: str, ranges: Sequence[ByteRange]) -> str | None:
        """Why ``ranges`` of the partial ``game_id`` cannot be granted; None if they can.

        Each range must be exactly one chunk this peer has verified.
        """
        entry = self._games.get(game_id)
        if entry is None:
            return f"{game_id} is not being downloaded here"
        for r in ranges:
            index = entry.by_start.get((r.path, r.offset))
            if index is None or entry.chunks[index].length != r.length:
                return f"{r.path} at {r.offset}+{r.length} is not a chunk of {game_id}"
            if index not in entry.verified:
                return f"chunk {index} of {game_id} is not verified here yet"
        return None

    def serves(self, grant: Grant) -> bool:
        """Whether ``grant`` is still good: the same partial game, verified chunks."""
        return grant.kind == "ranges" and self.refusal(grant.game_id, grant.ranges) is None
