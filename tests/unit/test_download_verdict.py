"""When the peers left that hold a missing chunk all sent it corrupt, the download
ends soon, with one sentence naming them."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from lanspread_core.library.manifest import ChunkRange
from lanspread_core.transfer import download
from lanspread_core.transfer.download import Download, DownloadJob
from lanspread_core.transfer.planner import Planner
from lanspread_core.transfer.sources import AllSourcesGone

CHUNK = 4 * 1024 * 1024


@dataclass
class Named:
    peer_id: str
    name: str


class NoPeers:
    self_id = "me"


def _download(tmp_path: Path) -> Download:
    job = DownloadJob("borealis", "2.1.0", install=False)
    return Download(job, tmp_path, NoPeers(), lambda event: None)  # type: ignore[arg-type]


def _planner() -> Planner:
    chunks = [ChunkRange("borealis.rar", i, i * CHUNK, CHUNK, "0" * 64) for i in range(4)]
    return Planner(chunks, ["a" * 32, "b" * 32])


def _ending(dl: Download, planner: Planner) -> BaseException | None:
    outcome = dl._verdict(planner)  # the starving starts now
    assert outcome is None
    time.sleep(0.05)
    return dl._verdict(planner)


def test_a_co_source_that_leaves_after_its_bad_chunk_ends_it_naming_the_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "STRUCK_GIVE_UP", 0.0)
    dl, planner = _download(tmp_path), _planner()
    dl._sources = {"a" * 32: Named("a" * 32, "alice"), "b" * 32: Named("b" * 32, "bob")}  # type: ignore[dict-item]
    planner.next_batch("a" * 32)
    planner.chunk_bad("a" * 32, 0)  # a sent chunk 0 corrupt
    for i in (1, 2, 3):
        planner.chunk_ok("a" * 32, i)
    planner.source_failed("b" * 32, "left the network")  # the honest one leaves
    outcome = _ending(dl, planner)
    assert isinstance(outcome, AllSourcesGone), outcome
    assert str(outcome) == (
        "download of borealis stopped: no peer left may send 1 chunk,"
        " because aaaaaaaa (alice) sent a corrupt chunk"
    )


def test_a_chunk_nobody_holds_without_bad_data_waits_the_longer_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "STRUCK_GIVE_UP", 0.0)
    dl, planner = _download(tmp_path), _planner()
    planner.set_have("a" * 32, frozenset({1, 2, 3}))
    planner.source_failed("b" * 32, "left the network")
    assert _ending(dl, planner) is None  # a partial holder may still get chunk 0
