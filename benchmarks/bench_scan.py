"""Library scan and manifest hashing.

* cold / warm full scan of 2,000 roots (version.ini + 2 small .eti each);
  the warm rescan (nothing changed) must stay under 1 s (DESIGN §4);
* build_manifest's BLAKE3 chunk-hashing rate against hashlib.sha256 over the
  same bytes with the same 4 MiB read loop (file in the page cache, so this
  measures hashing plus copying out of the cache, not the disk).

``BENCH_SCAN_ROOTS`` and ``BENCH_HASH_MIB`` shrink the run for a quick look.
"""

from __future__ import annotations

import hashlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import blake3

from lanspread_core.library import manifest as manifest_mod
from lanspread_core.library.catalog import parse_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.manifest import CHUNK_SIZE, build_manifest
from lanspread_core.library.statedir import StateDir

ROOTS = int(os.environ.get("BENCH_SCAN_ROOTS", "2000"))
HASH_MIB = int(os.environ.get("BENCH_HASH_MIB", "512"))
REPEATS = 3


def timed(func: Callable[[], object]) -> float:
    start = time.perf_counter()
    func()
    return time.perf_counter() - start


def best_of(func: Callable[[], object], repeats: int = REPEATS) -> float:
    return min(timed(func) for _ in range(repeats))


def make_roots(games: Path, count: int) -> list[str]:
    ids = [f"game{i:04d}" for i in range(count)]
    for i, game_id in enumerate(ids):
        root = games / game_id
        root.mkdir(parents=True)
        (root / "data.part1.eti").write_bytes(os.urandom(4096 + i % 512))
        (root / "data.part2.eti").write_bytes(os.urandom(2048))
        (root / "version.ini").write_text("1.0\n")
    return ids


def scan_rows(tmp: Path) -> list[dict]:
    games = tmp / "games"
    ids = make_roots(games, ROOTS)
    catalog = parse_catalog({"games": [{"id": g, "version": "1.0"} for g in ids]})
    state = StateDir(tmp / "state")

    lib = Library(games, state, catalog)
    cold = timed(lib.refresh)
    assert len(lib.games()) == ROOTS
    warm = statistics.median(timed(lib.refresh) for _ in range(5))
    reopened = best_of(lambda: Library(games, state, catalog).refresh())
    one = games / ids[ROOTS // 2] / "data.part1.eti"

    def touch_one() -> None:
        one.write_bytes(os.urandom(4096))
        lib.refresh()

    changed = best_of(touch_one)
    return [
        {"name": f"scan cold, {ROOTS} roots", "value": cold, "unit": "s"},
        {"name": f"scan warm, {ROOTS} roots", "value": warm, "unit": "s", "target": 1.0},
        {"name": "scan warm, new Library from index", "value": reopened, "unit": "s"},
        {"name": "scan with 1 root changed", "value": changed, "unit": "s", "target": 1.0},
    ]


def sha256_manifest_rate(root: Path, size: int) -> float:
    """The same read loop as build_manifest, hashing with SHA-256: bytes/s."""
    buffer = bytearray(CHUNK_SIZE)
    view = memoryview(buffer)

    def run() -> None:
        for path in sorted(root.glob("*.eti")):
            with open(path, "rb", buffering=0) as fh:
                while filled := fh.readinto(view):
                    hashlib.sha256(view[:filled]).hexdigest()

    return size / best_of(run)


def hash_rows(tmp: Path) -> list[dict]:
    root = tmp / "big"
    root.mkdir()
    size = HASH_MIB * 1024 * 1024
    block = os.urandom(64 * 1024 * 1024)
    with open(root / "big.eti", "wb") as fh:
        for _ in range(size // len(block)):
            fh.write(block)
        fh.write(block[: size % len(block)])
    build_manifest(root)  # page cache warm

    threaded = size / best_of(lambda: build_manifest(root))
    saved = manifest_mod.BLAKE3_THREADS
    manifest_mod.BLAKE3_THREADS = 1
    try:
        single = size / best_of(lambda: build_manifest(root))
    finally:
        manifest_mod.BLAKE3_THREADS = saved
    sha = sha256_manifest_rate(root, size)

    chunk = block[:CHUNK_SIZE]
    mem_b3 = CHUNK_SIZE * 64 / best_of(lambda: [blake3.blake3(chunk).digest() for _ in range(64)])
    mem_sha = CHUNK_SIZE * 64 / best_of(lambda: [hashlib.sha256(chunk).digest() for _ in range(64)])
    gb = 1e9
    return [
        {
            "name": f"build_manifest blake3 (AUTO threads), {HASH_MIB} MiB",
            "value": threaded / gb,
            "unit": "GB/s",
            "baseline": sha / gb,
            "higher_is_better": True,
        },
        {
            "name": "build_manifest blake3 (1 thread)",
            "value": single / gb,
            "unit": "GB/s",
            "baseline": sha / gb,
            "higher_is_better": True,
        },
        {"name": "same loop, hashlib.sha256", "value": sha / gb, "unit": "GB/s"},
        {
            "name": "in memory, blake3 4 MiB chunks (1 thread)",
            "value": mem_b3 / gb,
            "unit": "GB/s",
            "baseline": mem_sha / gb,
        },
        {"name": "in memory, sha256 4 MiB chunks", "value": mem_sha / gb, "unit": "GB/s"},
    ]


def run() -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="lanspread-bench-") as tmp:
        return scan_rows(Path(tmp)) + hash_rows(Path(tmp))
