"""Swarming, pause and resume between real peers in the LAN lab.

A seed on a slow link and receivers on fast ones: the receivers must feed
each other with the chunks they have verified, survive a partial holder that
dies or lies, and a download stopped half-way (cancel, a clean stop, a kill)
must fetch only the rest when it resumes.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from support.gamesets import GameSets
from support.lanlab import LanLab
from support.peerproc import PeerProc, sources_of
from support.trees import digest_tree

pytestmark = pytest.mark.needs("netns")

MiB = 1024 * 1024
GAME = "aurora"


class Swarm:
    """A seed on host 0 and receivers on hosts 1..n, each knowing the others."""

    def __init__(self, lab: LanLab, catalog: Path, stack: ExitStack, lab_dir: Path) -> None:
        self.lab, self.catalog, self.stack, self.lab_dir = lab, catalog, stack, lab_dir
        self.seed = self.start(0)
        self.receivers: list[PeerProc] = []

    def start(self, i: int, env: dict[str, str] | None = None) -> PeerProc:
        """(Re)start the peer of host ``i`` (its folder is ``h<i>``), knowing the others."""
        known = [getattr(self, "seed", None), *getattr(self, "receivers", [])]
        others = [p for p in known if p is not None and p.proc.poll() is None]
        static = [arg for p in others for arg in ("--peer", p.control)]
        return self.stack.enter_context(
            PeerProc(
                self.lab_dir / f"h{i}",
                args=[
                    *("--listen", f"{self.lab.hosts[i].addr}:0"),
                    *("--discovery", "static", "--ping-interval", "0.5"),
                    *("--stale-timeout", "3", "--name", f"h{i}"),
                    *static,
                ],
                prefix=["ip", "netns", "exec", self.lab.hosts[i].name],
                catalog=self.catalog,
                env=env,
            )
        )


@contextmanager
def swarm(
    tmp_path: Path,
    game_sets: GameSets,
    receivers: int,
    *,
    seed_rate: str,
    rate: str,
    size: int = 48 * MiB,
    env: dict[int, dict[str, str]] | None = None,
) -> Iterator[Swarm]:
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "h0" / "games", "alpha", catalog=catalog, size=size)
    with (
        LanLab(n_hosts=1 + receivers, rate=rate, per_host_rate={0: seed_rate}) as lab,
        ExitStack() as stack,
    ):
        s = Swarm(lab, catalog, stack, tmp_path)
        for i in range(1, 1 + receivers):
            s.receivers.append(s.start(i, (env or {}).get(i)))
        for r in s.receivers:
            sources_of(r, GAME, 1, timeout=20)
            r.ok("wait-peers", count=receivers, timeout_ms=20_000)
        yield s


def finished(peer: PeerProc, since: int, timeout: float = 120) -> dict[str, Any]:
    done = peer.wait_event(
        lambda e: (
            e["event"]
            in (
                "download-finished",
                "download-failed",
                "download-all-peers-gone",
                "download-cancelled",
            )
        ),
        since=since,
        timeout=timeout,
    )
    assert done["event"] == "download-finished", done
    return done


def all_download(receivers: list[PeerProc]) -> list[dict[str, Any]]:
    marks = [r.mark() for r in receivers]
    for r in receivers:
        r.send("download", game_id=GAME, install=False)
    return [finished(r, m) for r, m in zip(receivers, marks, strict=True)]


def test_receivers_feed_each_other_and_every_tree_is_identical(
    tmp_path: Path, game_sets: GameSets
) -> None:
    with swarm(tmp_path, game_sets, 3, seed_rate="40mbit", rate="1gbit") as s:
        results = all_download(s.receivers)
        ids = {r.peer_id for r in s.receivers}
        for peer, result in zip(s.receivers, results, strict=True):
            from_others = {
                pid: n for pid, n in result["peers"].items() if pid in ids - {peer.peer_id}
            }
            assert sum(from_others.values()) > 0, result["peers"]
            # verified bytes by source add up to what this run fetched: the game
            assert sum(result["peers"].values()) == result["bytes"] == result["total"]
            assert digest_tree(peer.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)


def test_a_killed_partial_holder_leaves_the_rest_to_finish(
    tmp_path: Path, game_sets: GameSets
) -> None:
    with swarm(tmp_path, game_sets, 3, seed_rate="40mbit", rate="1gbit") as s:
        first, *rest = s.receivers
        marks = [r.mark() for r in rest]
        since = first.mark()
        for r in s.receivers:
            r.send("download", game_id=GAME, install=False)
        first.wait_event(
            lambda e: e["event"] == "download-progress" and e["bytes"] > 0, since=since
        )
        first.kill()
        for r, m in zip(rest, marks, strict=True):
            finished(r, m)
            assert digest_tree(r.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)


def test_a_partial_holder_that_sends_a_corrupt_chunk_is_caught_and_struck(
    tmp_path: Path, game_sets: GameSets
) -> None:
    liar = {1: {"LANSPREAD_FAULT": "serve.corrupt_once"}}
    with swarm(tmp_path, game_sets, 3, seed_rate="40mbit", rate="1gbit", env=liar) as s:
        marks = [r.mark() for r in s.receivers]
        for r in s.receivers:
            r.send("download", game_id=GAME, install=False)
        for r, m in zip(s.receivers, marks, strict=True):
            finished(r, m)
            assert digest_tree(r.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)
        bad = s.receivers[0].peer_id
        rejected = [
            e
            for r in s.receivers[1:]
            for e in r.records
            if e.get("event") == "download-chunk-rejected"
        ]
        # the first range it sent to anyone was corrupted: caught where it landed
        assert rejected and {e["peer_id"] for e in rejected} == {bad}


def _download_until(peer: PeerProc, fraction: float) -> int:
    """Start a download on ``peer`` and wait until ``fraction`` of it arrived; the mark."""
    since = peer.mark()
    peer.send("download", game_id=GAME, install=False)
    peer.wait_event(
        lambda e: e["event"] == "download-progress" and e["bytes"] >= fraction * e["total"],
        since=since,
        timeout=60,
    )
    return since


def test_cancel_at_half_then_download_fetches_only_the_rest(
    tmp_path: Path, game_sets: GameSets
) -> None:
    with swarm(tmp_path, game_sets, 1, seed_rate="100mbit", rate="100mbit", size=96 * MiB) as s:
        (c,) = s.receivers
        since = _download_until(c, 0.45)
        c.ok("cancel", game_id=GAME)
        c.wait_event(lambda e: e["event"] == "download-cancelled", since=since)
        paused = c.ok("get-game", game_id=GAME)["paused"]
        assert 0.3 * paused["total"] < paused["bytes"] < paused["total"]
        assert not (c.games_dir / GAME / "version.ini").exists()
        result = c.ok("download", game_id=GAME, install=False, wait=True, timeout=120)
        assert result["resumed"] == paused["bytes"]
        assert result["bytes"] == result["total"] - paused["bytes"]
        assert digest_tree(c.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)
        assert "paused" not in c.ok("get-game", game_id=GAME)


@pytest.mark.parametrize("how", ["clean stop", "kill -9"])
def test_a_peer_stopped_mid_download_shows_paused_and_resumes(
    tmp_path: Path, game_sets: GameSets, how: str
) -> None:
    with swarm(tmp_path, game_sets, 1, seed_rate="100mbit", rate="100mbit", size=96 * MiB) as s:
        (c,) = s.receivers
        _download_until(c, 0.4)
        if how == "clean stop":
            c.shutdown()
        else:
            c.kill()
        time.sleep(0.5)
        c2 = s.start(1)
        entry = c2.ok("get-game", game_id=GAME)
        paused = entry["paused"]
        assert 0.2 * paused["total"] < paused["bytes"] < paused["total"], paused
        assert entry["downloaded"] is False
        sources_of(c2, GAME, 1, timeout=20)
        result = c2.ok("download", game_id=GAME, install=False, wait=True, timeout=120)
        assert result["resumed"] == paused["bytes"]
        assert result["bytes"] + result["resumed"] == result["total"]
        assert digest_tree(c2.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)


def test_eight_receivers_on_one_seed_uplink_never_fail(tmp_path: Path, game_sets: GameSets) -> None:
    with swarm(tmp_path, game_sets, 8, seed_rate="100mbit", rate="100mbit") as s:
        for _ in range(5):
            all_download(s.receivers)  # each must end "finished"
            for r in s.receivers:
                assert digest_tree(r.games_dir / GAME) == digest_tree(s.seed.games_dir / GAME)
            for r in s.receivers:
                r.ok("remove-download", game_id=GAME, wait=True, timeout=60)


@pytest.mark.parametrize("how", ["cancel --discard", "remove-download"])
def test_a_paused_download_is_deleted_only_when_asked(
    tmp_path: Path, game_sets: GameSets, how: str
) -> None:
    with swarm(tmp_path, game_sets, 1, seed_rate="100mbit", rate="100mbit", size=96 * MiB) as s:
        (c,) = s.receivers
        since = _download_until(c, 0.3)
        c.ok("cancel", game_id=GAME)
        c.wait_event(lambda e: e["event"] == "download-cancelled", since=since)
        assert any((c.games_dir / GAME).glob("*.eti")), "a pause keeps what verified"
        if how == "cancel --discard":
            done = c.ok("cancel", game_id=GAME, discard=True)
        else:
            done = c.ok("remove-download", game_id=GAME, wait=True)
        assert done["discarded"] > 0
        assert not (c.games_dir / GAME).exists()
        assert "paused" not in c.ok("list-games")["games"][0]
