"""The games this peer is downloading and serves in part: swarming.

While a download runs, its verified chunks are listed in this peer's library
as a partial game (the agreed manifest's hash and a have-map), so peers that
download the same game at the same version fetch those chunks from here too
and the first holder's uplink goes to what nobody else has yet. Only
verified chunks are granted, only of the agreed manifest, and never
``local/``: a grant names exact chunks, each checked against the verified
set when it is issued and again when its connection arrives.
"""

from __future__ import annotations

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


class Swarm:
    """Partial games by id; ``announce`` runs when what this peer serves changed."""

    def __init__(self, served: ServedLibrary, announce: Callable[[], None]) -> None:
        self._served = served
        self._announce = announce
        self._games: dict[str, _Partial] = {}

    def update(
        self, game_id: str, version: str, manifest: Manifest, verified: frozenset[int]
    ) -> None:
        """The download of ``game_id`` has verified ``verified`` (chunk indices)."""
        entry = self._games.get(game_id)
        if entry is None or entry.manifest.manifest_hash != manifest.manifest_hash:
            chunks = chunk_ranges(manifest)
            by_start = {(c.path, c.offset): i for i, c in enumerate(chunks)}
            entry = self._games[game_id] = _Partial(version, manifest, chunks, by_start)
        entry.verified = verified
        if not verified:
            return  # nothing to offer yet
        have = havemap.encode(verified, len(entry.chunks))
        info = GameInfo(game_id, version, manifest.total_size, manifest.manifest_hash, have)
        if self._served.set_partial(game_id, info):
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
