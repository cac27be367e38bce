"""Versions explained: why a catalog game is not available, in one line.

When the catalog names one version and the peers hold others (or nothing),
the user reads it in one sentence that says which catalog decided and what
the peers have, e.g.::

    aurora: the party catalog (seq 7) says 1.0; 3 peers have 1.1 (ann, bob, cy)
    aurora 1.0: no peer has it yet

``download``, ``get-game`` and ``list-games`` (hence the console, ``lanspread
games`` and the web page) use the same line.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from lanspread_core.wire.messages import GameInfo
from lanspread_core.wire.schema import clip

#: peers named in a line before "and N more"
NAMED = 3


class Holder(Protocol):
    peer_id: str
    name: str
    games: dict[str, GameInfo]


def _who(peer: Holder) -> str:
    return clip(peer.name) if peer.name else peer.peer_id[:8]


def _peers(n: int) -> str:
    return "1 peer has" if n == 1 else f"{n} peers have"


def explain(
    game_id: str,
    version: str,
    peers: Iterable[Holder],
    *,
    party_seq: int | None = None,
    local_version: str | None = None,
) -> str | None:
    """The line for ``game_id`` at catalog ``version``; None when a peer serves it.

    :param party_seq: the party catalog's seq when it named this version.
    :param local_version: what the local catalog file says, when the party's won over it.
    """
    by_version: dict[str, list[Holder]] = {}
    for peer in peers:
        info = peer.games.get(game_id)
        if info is not None:
            by_version.setdefault(info.version, []).append(peer)
    if by_version.get(version):
        return None
    whose = "your catalog" if party_seq is None else f"the party catalog (seq {party_seq})"
    note = ""
    if party_seq is not None and local_version is not None and local_version != version:
        note = f" (your catalog file says {local_version}; the party catalog wins)"
    if not by_version:
        head = f"{game_id} {version}: no peer has it yet"
        return head + ("" if party_seq is None else f"; {whose} names it") + note
    held = []
    for other in sorted(by_version, key=lambda v: (-len(by_version[v]), v)):
        holders = by_version[other]
        names = ", ".join(_who(p) for p in holders[:NAMED])
        more = f" and {len(holders) - NAMED} more" if len(holders) > NAMED else ""
        held.append(f"{_peers(len(holders))} {other} ({names}{more})")
    return f"{game_id}: {whose} says {version}; {'; '.join(held)}{note}"
