"""What this peer tells others it serves: snapshots, deltas and a digest.

Only games that are Ready are listed whole: in the catalog, downloaded at the
catalog version, with no operation active. ``local/`` is never part of it.
A game this peer is downloading is listed as *partial*, with the have-map of
the chunks it has verified against the agreed manifest, so the crowd
downloading the same game feeds itself (swarming).
A short history of past listings lets a peer that is a few revisions behind
get a delta; one that is further behind (a gap) gets a full snapshot.
"""

from __future__ import annotations

import collections
import hashlib
import json

from lanspread_core.library.index import GameState
from lanspread_core.library.layout import Availability
from lanspread_core.wire.messages import GameInfo, LibraryDelta, LibrarySnapshot

HISTORY = 64


def served_games(games: list[GameState]) -> dict[str, GameInfo]:
    return {
        g.id: GameInfo(g.id, g.local_version or "", g.size, g.manifest_hash or "")
        for g in games
        if g.availability is Availability.READY and g.manifest_hash and g.local_version
    }


def digest(games: dict[str, GameInfo]) -> str:
    canon = json.dumps([games[k].to_json() for k in sorted(games)], separators=(",", ":"))
    return hashlib.sha256(canon.encode()).hexdigest()[:32]


class ServedLibrary:
    """The served listing per library revision (updated from the event loop)."""

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.rev = 0
        self.games: dict[str, GameInfo] = {}
        self._whole: dict[str, GameInfo] = {}
        self._partial: dict[str, GameInfo] = {}
        self._history: collections.OrderedDict[int, dict[str, GameInfo]] = collections.OrderedDict()

    def update(self, rev: int, games: list[GameState]) -> bool:
        """Record the library's listing at ``rev``; True when what is served changed."""
        self._whole = served_games(games)
        return self._publish(rev)

    def set_partial(self, game_id: str, info: GameInfo | None) -> bool:
        """List ``game_id`` as partial (``info.have`` set) or stop; True when it changed."""
        if info is None:
            self._partial.pop(game_id, None)
        else:
            self._partial[game_id] = info
        return self._publish(self.rev)

    def partial(self, game_id: str) -> GameInfo | None:
        """What this peer serves of ``game_id`` while downloading it, if anything."""
        info = self.games.get(game_id)
        return info if info is not None and info.partial else None

    def _publish(self, rev: int) -> bool:
        listing = {**self._partial, **self._whole}  # a whole game is never partial too
        changed = listing != self.games
        # the rev moves with the library's, and past it when only partials changed
        self.rev = rev if rev > self.rev else self.rev + (1 if changed else 0)
        self.games = listing
        self._history[self.rev] = listing
        while len(self._history) > HISTORY:
            self._history.popitem(last=False)
        return changed

    @property
    def digest(self) -> str:
        return digest(self.games)

    def snapshot(self) -> LibrarySnapshot:
        return LibrarySnapshot(
            self.peer_id, self.rev, tuple(self.games[k] for k in sorted(self.games))
        )

    def delta(self, from_rev: int) -> LibraryDelta | LibrarySnapshot:
        old = self._history.get(from_rev)
        if old is None:
            return self.snapshot()
        new = self.games
        added = tuple(new[k] for k in sorted(new.keys() - old.keys()))
        updated = tuple(new[k] for k in sorted(new.keys() & old.keys()) if new[k] != old[k])
        removed = tuple(sorted(old.keys() - new.keys()))
        return LibraryDelta(self.peer_id, from_rev, self.rev, added, updated, removed)
