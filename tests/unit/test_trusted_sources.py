"""With a trusted manifest hash in the catalog, no vote: only holders of it are sources.

Real manifests of real roots; the control plane is a recording stand-in that
answers ``GetGame`` with what each holder would send.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from lanspread_core.library.manifest import Manifest
from lanspread_core.system.ratelog import OncePer
from lanspread_core.transfer import sources as sources_module
from lanspread_core.transfer.sources import DownloadError, agreed_sources
from lanspread_core.wire.messages import GameInfo
from support.holders import Holders, small_manifest


def manifest(tmp_path: Path, seed: int) -> Manifest:
    return small_manifest(tmp_path, seed)


@pytest.fixture(autouse=True)
def fresh_log_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources_module, "_refusals_said", OncePer())


HONEST, LIAR1, LIAR2 = "a1" * 16, "b2" * 16, "c3" * 16


@pytest.mark.anyio
async def test_the_trusted_manifest_wins_against_a_majority_and_liars_are_named(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good, bad = manifest(tmp_path, 1), manifest(tmp_path, 2)
    peers = Holders()
    peers.add(LIAR1, "liar", bad)
    peers.add(LIAR2, "", bad)
    peers.add(HONEST, "honest", good)
    with caplog.at_level(logging.WARNING):
        agreed, sources = await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert agreed.manifest_hash == good.manifest_hash
    assert [s.peer_id for s in sources] == [HONEST]
    assert peers.asked == [HONEST]  # a listing of another manifest is not worth a GetGame
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        f"peer liar (b2b2b2b2) offers aurora 1.0 with manifest {bad.manifest_hash[:12]}…,"
        " not the one the catalog trusts; not using it",
        f"peer c3c3c3c3 offers aurora 1.0 with manifest {bad.manifest_hash[:12]}…,"
        " not the one the catalog trusts; not using it",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert not caplog.records  # once a minute per peer, game and manifest


@pytest.mark.anyio
async def test_one_honest_source_is_enough(tmp_path: Path) -> None:
    good = manifest(tmp_path, 1)
    peers = Holders()
    peers.add(HONEST, "honest", good)
    agreed, sources = await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert agreed.manifest_hash == good.manifest_hash and len(sources) == 1


@pytest.mark.anyio
async def test_a_lying_only_source_is_refused_in_one_sentence_naming_it(tmp_path: Path) -> None:
    good, bad = manifest(tmp_path, 1), manifest(tmp_path, 2)
    peers = Holders()
    # it lists the trusted hash, but the manifest it sends is another
    peers.add(LIAR1, "liar", good, sends=bad)
    with pytest.raises(DownloadError) as refused:
        await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert peers.asked == [LIAR1]
    assert str(refused.value) == (
        f"peer liar (b2b2b2b2) offers aurora 1.0 with manifest {bad.manifest_hash[:12]}…,"
        " not the one the catalog trusts; not using it, and no other peer offers it"
    )


@pytest.mark.anyio
async def test_several_liars_and_no_honest_source_are_all_named(tmp_path: Path) -> None:
    good, bad, worse = manifest(tmp_path, 1), manifest(tmp_path, 2), manifest(tmp_path, 3)
    peers = Holders()
    peers.add(LIAR1, "liar", bad)
    peers.add(LIAR2, "", worse)
    with pytest.raises(DownloadError) as refused:
        await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert str(refused.value) == (
        "no peer offers aurora 1.0 with the manifest the catalog trusts"
        f" (peer liar (b2b2b2b2) offers manifest {bad.manifest_hash[:12]}…,"
        f" peer c3c3c3c3 offers manifest {worse.manifest_hash[:12]}…); not using them"
    )
    assert peers.asked == []


@pytest.mark.anyio
async def test_a_name_or_hash_with_line_breaks_stays_on_one_line(tmp_path: Path) -> None:
    good = manifest(tmp_path, 1)
    peers = Holders()
    peers.add(LIAR1, "evil\nERROR: forged", good)
    peers.peers[LIAR1].games["aurora"] = GameInfo("aurora", "1.0", 1, "ab\ncd" + "0" * 20)
    with pytest.raises(DownloadError) as refused:
        await agreed_sources(peers, "aurora", "1.0", good.manifest_hash)
    assert str(refused.value).startswith(
        "peer evil?ERROR: forged (b2b2b2b2) offers aurora 1.0 with manifest ab?cd0000000…,"
    )
