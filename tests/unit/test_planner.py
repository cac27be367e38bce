"""The download planner: throughput-weighted batches, retries, penalties, end-game."""

from __future__ import annotations

import pytest

from lanspread_core.library.manifest import ChunkRange
from lanspread_core.transfer.download import Download
from lanspread_core.transfer.planner import MAX_ATTEMPTS, MAX_STRIKES, Planner
from lanspread_core.transfer.sources import DownloadError
from lanspread_core.wire.messages import TransferGrant

MiB = 1024 * 1024


def chunks(n: int, size: int = 4 * MiB) -> list[ChunkRange]:
    return [ChunkRange("game.eti", i, i * size, size, f"h{i}") for i in range(n)]


def test_faster_peers_get_bigger_batches() -> None:
    plan = Planner(chunks(200), ["fast", "slow"])
    plan.sources["fast"].note(400 * MiB, 1.0)
    plan.sources["fast"].note(400 * MiB, 1.0)
    plan.sources["slow"].note(10 * MiB, 1.0)
    plan.sources["slow"].note(10 * MiB, 1.0)
    fast, slow = plan.next_batch("fast"), plan.next_batch("slow")
    assert len(fast) > 5 * len(slow) >= 5
    assert not set(fast) & set(slow)


def test_a_corrupt_chunk_goes_to_another_peer_and_strikes_the_sender() -> None:
    plan = Planner(chunks(3), ["liar", "honest"])
    batch = plan.next_batch("liar")
    plan.chunk_bad("liar", batch[0])
    assert plan.sources["liar"].strikes == 1
    for index in batch[1:]:
        plan.chunk_ok("liar", index)
    assert batch[0] not in plan.next_batch("liar")
    again = plan.next_batch("honest")
    assert batch[0] in again


def test_too_many_strikes_drop_the_peer_and_return_its_work() -> None:
    plan = Planner(chunks(100), ["liar", "honest"])
    for _ in range(MAX_STRIKES):
        index = plan.next_batch("liar")[0]
        plan.chunk_bad("liar", index)
    assert plan.sources["liar"].busy == set() or plan.sources["liar"].failed
    assert plan.sources["liar"].failed
    assert plan.next_batch("liar") == []
    assert not plan.sources["liar"].busy


def test_a_lost_source_gives_its_chunks_back() -> None:
    plan = Planner(chunks(4), ["a", "b"])
    batch = plan.next_batch("a")
    plan.source_failed("a", "connection reset")
    rest = []
    while got := plan.next_batch("b"):
        rest += got
        for i in got:
            plan.chunk_ok("b", i)
    assert set(batch) <= set(rest) and plan.finished


def test_end_game_duplicates_a_chunk_still_in_flight() -> None:
    plan = Planner(chunks(1), ["slow", "idle"])
    assert plan.next_batch("slow") == [0]
    assert plan.next_batch("idle") == [0]  # the last chunk is requested twice
    plan.chunk_ok("idle", 0)
    plan.unfinished("slow", [0])
    assert plan.finished and not plan.in_flight


def test_end_game_takes_the_chunk_its_holder_will_deliver_last() -> None:
    plan = Planner(chunks(6), ["a", "b", "idle"])
    for source in plan.sources.values():
        source.rate, source.measured = 32 * MiB, True  # eight chunks a second
    assert plan.next_batch("a") == [0, 1]
    held = []
    while plan.pending:  # b asks ahead (pipelined) until it holds all the rest
        held += plan.next_batch("b", endgame=False)
    assert held == [2, 3, 4, 5]
    assert plan.next_batch("idle", endgame=False) == []  # a pipelined ask does not duplicate
    assert plan.next_batch("idle") == [5]  # b reaches it last
    assert plan.next_batch("idle") == [4]  # 5 is held by idle too now


def test_batches_shrink_to_a_fair_share_of_what_is_left() -> None:
    plan = Planner(chunks(24), ["a", "b", "c"], streams=2)
    for peer in plan.sources:
        plan.sources[peer].note(400 * MiB, 1.0)  # each stream could take 64 chunks a second
    first = plan.next_batch("a")
    assert len(first) == 4  # 24 pending / (3 peers x 2 streams)
    sizes = []
    while plan.pending:
        sizes.append(len(plan.next_batch("b")))
    assert sizes[0] == 4 and sizes[-1] == 1 and sizes == sorted(sizes, reverse=True)


def test_bounded_retries_fail_the_download() -> None:
    plan = Planner(chunks(1), [f"p{i}" for i in range(MAX_ATTEMPTS + 2)])
    for i in range(MAX_ATTEMPTS + 1):
        assert plan.next_batch(f"p{i}") == [0]
        plan.chunk_bad(f"p{i}", 0)
    assert plan.fatal and "failed" in plan.fatal


def test_a_partial_source_sends_what_it_has_and_the_seed_what_nobody_else_has() -> None:
    plan = Planner(chunks(6), ["seed"])
    plan.add_source("p", frozenset({0, 1, 2}))
    assert plan.rarity(0) == 2 and plan.rarity(5) == 1
    from_seed = plan.next_batch("seed")
    assert from_seed and set(from_seed) <= {3, 4, 5}  # rarest first
    assert set(plan.next_batch("p")) <= {0, 1, 2}
    plan.set_have("p", frozenset({0, 1, 2, 3, 4, 5}))
    assert plan.rarity(5) == 2


def test_no_end_game_copies_while_chunks_wait_for_a_holder() -> None:
    plan = Planner(chunks(4), ["seed"])
    plan.add_source("p", frozenset({0}))
    first = plan.next_batch("p")
    assert first == [0]
    # p holds nothing else; chunks are still pending for the seed: p waits
    assert plan.next_batch("p") == []


def test_chunks_are_asked_for_in_the_order_the_download_chose() -> None:
    plan = Planner(chunks(6), ["a"], order=[4, 1, 5, 0, 2, 3])
    assert plan.next_batch("a") == [4]  # one chunk first: the rate is not known yet


def test_an_unmeasured_source_has_one_chunk_in_flight_then_what_its_rate_allows() -> None:
    plan = Planner(chunks(40), ["seed"], streams=2)
    assert plan.next_batch("seed") == [0]
    assert plan.next_batch("seed") == []  # the other stream waits: nothing measured yet
    plan.chunk_ok("seed", 0)
    plan.sources["seed"].note(4 * MiB, 2.5)  # a crowd shares the seed: 1.6 MiB/s for me
    assert len(plan.next_batch("seed")) == 1
    assert plan.next_batch("seed") == []
    fast = Planner(chunks(40), ["lan"], streams=2)
    fast.next_batch("lan")
    fast.chunk_ok("lan", 0)
    fast.sources["lan"].note(4 * MiB, 0.035)  # ~120 MB/s: a gigabit link
    assert len(fast.next_batch("lan")) > 8


def test_a_seed_the_crowd_shares_sends_one_chunk_at_a_time() -> None:
    plan = Planner(chunks(40), ["seed"], streams=2)
    plan.add_source("p", frozenset({0}))
    assert plan.next_batch("seed") == [1]  # unmeasured: one chunk, as alone
    plan.chunk_ok("seed", 1)
    plan.sources["seed"].note(4 * MiB, 0.035)  # fast: alone it would take many
    assert len(plan.next_batch("seed")) == 1
    assert plan.next_batch("seed") == []  # one in flight: the crowd gets the rest


def _grant(granted: tuple[int, ...], taken: tuple[int, ...]) -> TransferGrant:
    return TransferGrant("0" * 32, 7002, 30.0, granted, taken)


def test_a_partial_grant_keeps_its_chunks_leaves_the_taken_and_returns_the_rest() -> None:
    plan = Planner(chunks(10, size=MiB), ["seed"])
    plan.sources["seed"].measured = True  # 4 MiB/s: batches of 4 chunks
    asked = plan.next_batch("seed")
    assert len(asked) >= 3
    kept = Download._part(plan, "seed", asked[:3], _grant((1,), (0,)))
    assert kept == [asked[1]] and plan.sources["seed"].busy == {asked[1], *asked[3:]}
    # the taken chunk is not asked of the seed for a while; the other is pending again
    assert ("seed", asked[0]) in plan.deferred and asked[2] in plan.pending


@pytest.mark.parametrize(
    ("granted", "taken"),
    [((), (0,)), ((3,), ()), ((1, 1), ()), ((2, 1), ()), ((0,), (0,)), ((0,), (5,))],
)
def test_a_grant_naming_positions_not_asked_for_is_a_refusal(
    granted: tuple[int, ...], taken: tuple[int, ...]
) -> None:
    plan = Planner(chunks(10), ["seed"])
    with pytest.raises(DownloadError, match="not asked for"):
        Download._part(plan, "seed", [0, 1, 2], _grant(granted, taken))
