"""A foreign manifest's chunk size is bounded, and the receiving threads' chunk
buffers are freed when a download ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanspread_core.dataplane import client
from lanspread_core.events import Event
from lanspread_core.library.manifest import (
    MAX_CHUNK_SIZE,
    Manifest,
    ManifestError,
    build_manifest,
)
from unit.test_download_engine import FakePeers, FakeSource, Seed, download, make_root, serving

MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _manifest_with_chunks_of(tmp_path: Path, chunk_size: int) -> dict[str, object]:
    root = tmp_path / "game"
    root.mkdir()
    (root / "game.eti").write_bytes(b"x" * 100)
    small = build_manifest(root, chunk_size=1024)  # one chunk: the same at any chunk size
    return Manifest.create(list(small.files), chunk_size=chunk_size).to_json()


def test_a_manifest_with_256_mib_chunks_is_refused_in_one_sentence(tmp_path: Path) -> None:
    data = _manifest_with_chunks_of(tmp_path, 256 * MiB)
    with pytest.raises(ManifestError) as refused:
        Manifest.from_json(data)
    why = str(refused.value)
    assert "chunk size" in why and "16 MiB" in why and why.count(". ") == 0, why


def test_a_manifest_with_16_mib_chunks_is_accepted(tmp_path: Path) -> None:
    data = _manifest_with_chunks_of(tmp_path, 16 * MiB)
    assert Manifest.from_json(data).chunk_size == MAX_CHUNK_SIZE


@pytest.mark.anyio
async def test_no_chunk_buffer_is_held_after_a_download_ends(tmp_path: Path) -> None:
    before = client.held_buffer_bytes()
    a = Seed(FakeSource("a" * 32), tmp_path / "a" / "g", make_root(tmp_path / "a" / "g"))
    events: list[Event] = []
    async with serving([a]):
        result = await download(tmp_path / "games", FakePeers([a]), events)
    assert result["bytes"] == a.manifest.total_size
    # its receiving threads freed theirs (and any they held from before)
    assert client.held_buffer_bytes() <= before
