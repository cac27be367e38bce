"""What a peer serves and how another peer follows it: snapshots, deltas, gaps."""

from __future__ import annotations

from lanspread_core.library.index import GameState
from lanspread_core.library.layout import Availability
from lanspread_core.library.served import ServedLibrary
from lanspread_core.runtime.peers import RemotePeer

PID = "0123456789abcdef0123456789abcdef"


def game(gid: str, availability: Availability = Availability.READY, h: str = "h1") -> GameState:
    return GameState(gid, gid.title(), "1.0", "1.0", True, False, availability, 10, h)


def test_only_ready_games_are_served() -> None:
    served = ServedLibrary(PID)
    served.update(
        1,
        [
            game("ready"),
            game("busy", Availability.BUSY),
            game("old", Availability.OUTDATED),
            game("mine", Availability.LOCAL_ONLY),
            game("unlisted", Availability.UNLISTED),
            game("fetching", Availability.DOWNLOADING),
        ],
    )
    assert [g.id for g in served.snapshot().games] == ["ready"]


def test_deltas_follow_and_a_gap_falls_back_to_a_snapshot() -> None:
    served = ServedLibrary(PID)
    follower = RemotePeer(PID, "h", 1)
    served.update(1, [game("a"), game("b")])
    assert follower.apply(served.snapshot()) and follower.library_rev == 1
    served.update(2, [game("a", h="h2"), game("c")])
    delta = served.delta(1)
    assert [g.id for g in delta.added] == ["c"]
    assert [g.id for g in delta.updated] == ["a"] and delta.removed == ("b",)
    assert follower.apply(delta) and set(follower.games) == {"a", "c"}
    assert follower.games["a"].manifest_hash == "h2"
    assert follower.apply(delta) is False  # applied twice: from_rev no longer matches
    assert set(follower.games) == {"a", "c"}  # and nothing changed
    for rev in range(3, 100):
        served.update(rev, [game("a"), game(f"g{rev}")])
    assert type(served.delta(2)).__name__ == "LibrarySnapshot"  # too old: a gap


def test_a_busy_game_disappears_and_comes_back() -> None:
    served = ServedLibrary(PID)
    served.update(1, [game("a")])
    assert served.update(2, [game("a", Availability.BUSY)])
    assert served.delta(1).removed == ("a",)
    assert served.update(3, [game("a")])
    assert [g.id for g in served.delta(2).added] == ["a"]
