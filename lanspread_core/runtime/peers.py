"""The peers this peer knows, keyed by ``peer_id`` (never by address)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lanspread_core.library.served import digest
from lanspread_core.wire.messages import GameInfo, LibraryDelta, LibrarySnapshot


def _every(_game_id: str) -> bool:
    return True


@dataclass
class RemotePeer:
    peer_id: str
    host: str
    port: int
    name: str = ""
    data_port: int = 0
    #: the revision of ``games``; -1 until the first snapshot arrived
    library_rev: int = -1
    #: the revision the peer last announced (Hello, Ping, mDNS); ahead means fetch
    announced_rev: int = 0
    games: dict[str, GameInfo] = field(default_factory=dict)
    last_seen: float = field(default_factory=time.monotonic)
    source: str = ""
    #: what its Hello said it can do (``library-delta``: it answers GetDelta)
    features: tuple[str, ...] = ()
    #: announcements in a row whose revision its replies never reached
    undelivered: int = 0
    #: until then (monotonic) its announcements are ignored: it misbehaved
    ignored_until: float = 0.0
    #: the revision of our library our last ping that it answered carried (-1: none)
    told_rev: int = -1

    def seen(self) -> None:
        self.last_seen = time.monotonic()

    def digest(self) -> str:
        """The digest of our copy of its library: equal to the one it announces
        when the copy is current (:func:`~lanspread_core.library.served.digest`)."""
        return digest(self.games)

    def apply(
        self, reply: LibrarySnapshot | LibraryDelta, keep: Callable[[str], bool] = _every
    ) -> bool:
        """Apply a snapshot, or a delta that starts where we are; False on a gap.

        Only games ``keep`` takes are kept (the runtime keeps what its catalog
        names): a peer cannot fill our tables with games nobody here can get.
        """
        if isinstance(reply, LibrarySnapshot):
            self.games = {g.id: g for g in reply.games if keep(g.id)}
            self.library_rev = reply.library_rev
            return True
        if reply.from_rev != self.library_rev:
            return False
        for g in (*reply.added, *reply.updated):
            if keep(g.id):
                self.games[g.id] = g
        for gid in reply.removed:
            self.games.pop(gid, None)
        self.library_rev = reply.to_rev
        return True

    def to_json(self) -> dict[str, Any]:
        return {
            "peer_id": self.peer_id,
            "name": self.name,
            "addr": f"{self.host}:{self.port}",
            "data_port": self.data_port,
            "library_rev": self.library_rev,
            "games": sorted(self.games),
            "last_seen_s": round(time.monotonic() - self.last_seen, 2),
        }


class PeerTable:
    def __init__(self) -> None:
        self._peers: dict[str, RemotePeer] = {}

    def __contains__(self, peer_id: str) -> bool:
        return peer_id in self._peers

    def __len__(self) -> int:
        return len(self._peers)

    def get(self, peer_id: str) -> RemotePeer | None:
        return self._peers.get(peer_id)

    def all(self) -> list[RemotePeer]:
        return [self._peers[k] for k in sorted(self._peers)]

    def by_address(self, host: str, port: int) -> RemotePeer | None:
        return next((p for p in self._peers.values() if (p.host, p.port) == (host, port)), None)

    def add(self, peer: RemotePeer) -> None:
        self._peers[peer.peer_id] = peer

    def remove(self, peer_id: str) -> RemotePeer | None:
        return self._peers.pop(peer_id, None)
