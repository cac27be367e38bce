"""The manifest of a game root's download: what a downloader must fetch and verify.

A manifest lists every file of the download (DESIGN §3: the root minus
``local/``, reserved names and the root-level ``version.ini`` sentinel, which
the downloader writes itself, last) with its size and one hash per fixed-size
chunk, plus ``manifest_hash``: BLAKE3 over a canonical JSON encoding of
``(algo, chunk_size, files)``. Peers compare ``manifest_hash`` to agree on a
manifest by majority; the per-chunk hashes let a downloader verify every chunk
as it lands and refetch just a bad one.

Chunk size: 4 MiB (:data:`CHUNK_SIZE`) for a game of 512 MiB or more, and
down to 256 KiB for smaller ones, so that a game has about 128 chunks where it
can (:func:`chunk_size_for`). It is the unit of verification, retry and
scheduling across peers. At 1 Gbit/s one 4 MiB chunk is ~35 ms of transfer, so
a failed chunk costs little to refetch and work spreads finely over peers,
while per-chunk overhead (a hash call, a range, a queue slot) stays
negligible. A 4 MiB buffer is also where the ``blake3`` package's
multithreaded hashing pays off. The cost is manifest size: ~67 bytes of JSON
per chunk, about 1.7 MB for a 100 GiB game, which the control plane's message
cap must allow for. A smaller game gets smaller chunks because a swarm can
pass a chunk on only once it is whole and verified: while a seed feeds N
receivers at once, the first chunk anyone can re-serve lands after N chunks'
worth of the seed's uplink, a delay that grows with the chunk size and that
only a small game feels (docs/decisions.md, "Chunks sized to the game").

Manifests come from the network, so :meth:`Manifest.from_json` trusts nothing:
types, sizes, chunk counts, path safety, ordering and the hash are all checked,
and any fault is one :class:`ManifestError` sentence.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3

from lanspread_core.errors import LanspreadError
from lanspread_core.library import layout

CHUNK_SIZE = 4 * 1024 * 1024
#: The smallest chunk :func:`chunk_size_for` picks, and the chunks it aims at.
MIN_AUTO_CHUNK_SIZE = 256 * 1024
TARGET_CHUNKS = 128
#: Bounds accepted from peers: tiny chunks would bloat manifests and plans,
#: huge ones would force huge buffers on the verifying side.
MIN_CHUNK_SIZE = 1024
#: a receiver holds a few chunks per stream in memory: 16 MiB keeps that bounded
MAX_CHUNK_SIZE = 16 * 1024 * 1024
ALGO = "blake3"
#: Chunk hash algorithms a manifest may name (DESIGN §5: SHA-256 or BLAKE3).
ALGORITHMS = ("blake3", "sha256")
#: ``blake3``'s own thread pool; measured (benchmarks/bench_scan.py) to speed up
#: 4 MiB chunks on two cores, and manifests are built off the event loop anyway.
BLAKE3_THREADS = blake3.blake3.AUTO

_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = frozenset({"algo", "chunk_size", "files", "manifest_hash"})
_FILE_KEYS = frozenset({"path", "size", "chunks"})


class ManifestError(LanspreadError, ValueError):
    """A manifest is malformed or does not match its hash (one sentence)."""


@dataclass(frozen=True)
class FileEntry:
    """One file of the download: relative POSIX path, size, chunk hashes in order."""

    path: str
    size: int
    chunks: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "size": self.size, "chunks": list(self.chunks)}


@dataclass(frozen=True)
class ChunkRange:
    """One chunk to fetch and verify: ``length`` bytes of ``path`` at ``offset``."""

    path: str
    index: int
    offset: int
    length: int
    hash: str


@dataclass(frozen=True)
class Manifest:
    chunk_size: int
    algo: str
    files: tuple[FileEntry, ...]
    manifest_hash: str

    @classmethod
    def create(
        cls, files: list[FileEntry], *, chunk_size: int = CHUNK_SIZE, algo: str = ALGO
    ) -> Manifest:
        """A manifest over ``files`` with its ``manifest_hash`` computed."""
        entries = tuple(sorted(files, key=lambda f: f.path))
        return cls(chunk_size, algo, entries, _canonical_hash(chunk_size, algo, entries))

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def chunk_count(self) -> int:
        return sum(len(f.chunks) for f in self.files)

    def file(self, path: str) -> FileEntry | None:
        return next((f for f in self.files if f.path == path), None)

    def ranges(self) -> Iterator[ChunkRange]:
        """Every chunk of every file, in file then offset order (for download planning)."""
        for entry in self.files:
            yield from file_ranges(entry, self.chunk_size)

    def to_json(self) -> dict[str, Any]:
        return {
            "algo": self.algo,
            "chunk_size": self.chunk_size,
            "files": [f.to_json() for f in self.files],
            "manifest_hash": self.manifest_hash,
        }

    @classmethod
    def from_json(cls, data: Any) -> Manifest:
        """Parse and fully validate a manifest that may come from an untrusted peer."""
        if not isinstance(data, dict):
            raise ManifestError("manifest is not a JSON object")
        _exact_keys(data, _TOP_KEYS, "manifest")
        algo, chunk_size = data["algo"], data["chunk_size"]
        if algo not in ALGORITHMS:
            raise ManifestError(f"manifest names an unknown hash algorithm {algo!r}")
        if not _is_int(chunk_size) or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
            raise ManifestError(
                f"the manifest's chunk size must be a whole number of bytes from"
                f" {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE} (16 MiB), not {str(chunk_size)[:40]}"
            )
        raw_files = data["files"]
        if not isinstance(raw_files, list):
            raise ManifestError("manifest 'files' is not a list")
        files = tuple(_file_from_json(item, chunk_size) for item in raw_files)
        _check_paths(files)
        claimed = data["manifest_hash"]
        if not isinstance(claimed, str) or not _HEX64.match(claimed):
            raise ManifestError("manifest_hash is not 64 lowercase hex digits")
        if _canonical_hash(chunk_size, algo, files) != claimed:
            raise ManifestError("manifest_hash does not match the manifest's contents")
        return cls(chunk_size, algo, files, claimed)


def chunk_count(size: int, chunk_size: int) -> int:
    """Chunks of a ``size``-byte file: an empty file has none (nothing to fetch)."""
    return math.ceil(size / chunk_size)


def file_ranges(entry: FileEntry, chunk_size: int) -> Iterator[ChunkRange]:
    """The chunk ranges of one file; the last chunk is short unless size divides evenly."""
    for index, digest in enumerate(entry.chunks):
        offset = index * chunk_size
        yield ChunkRange(entry.path, index, offset, min(chunk_size, entry.size - offset), digest)


def chunk_ranges(manifest: Manifest) -> list[ChunkRange]:
    return list(manifest.ranges())


def hash_chunk(algo: str, data: bytes | bytearray | memoryview) -> str:
    """Hex digest of one chunk under ``algo`` (what a downloader verifies against)."""
    if algo == "blake3":
        return blake3.blake3(data, max_threads=BLAKE3_THREADS).hexdigest()
    if algo == "sha256":
        return hashlib.sha256(data).hexdigest()
    raise ManifestError(f"unknown hash algorithm {algo!r}")


def chunk_size_for(total: int) -> int:
    """The chunk size of a download of ``total`` bytes: the smallest power of
    two of at least ``total / TARGET_CHUNKS``, from 256 KiB to 4 MiB."""
    want = -(-total // TARGET_CHUNKS)
    size = MIN_AUTO_CHUNK_SIZE
    while size < want and size < CHUNK_SIZE:
        size *= 2
    return size


def build_manifest(
    root: Path,
    *,
    chunk_size: int | None = None,
    algo: str = ALGO,
    check: Callable[[], None] | None = None,
    reuse: Mapping[str, FileEntry] | None = None,
    reuse_chunk_size: int = CHUNK_SIZE,
) -> Manifest:
    """Hash the download of ``root`` (blocking: run it in a worker thread).

    ``check`` is called between chunks so a cancelled caller can stop a long
    hash (e.g. ``anyio.from_thread.check_cancelled``). ``reuse`` maps paths the
    caller knows to be unchanged (same size and times as when they were hashed
    with this chunk size and algorithm) to their old entries, which are taken
    as they are: copying a game in file by file then costs one hash per file,
    not one per file per event. A file whose name cannot be a manifest path
    (not UTF-8, or not round-tripping as a safe relative path) raises
    :class:`ManifestError`, because peers could not ask for it.

    Without ``chunk_size``, the size of the download picks it
    (:func:`chunk_size_for`); ``reuse`` counts only when its entries were
    hashed with that chunk size (``reuse_chunk_size``).
    """
    paths = list(layout.download_files(root))
    if chunk_size is None:
        chunk_size = chunk_size_for(
            sum(
                p.stat().st_size for p in paths if p.relative_to(root).as_posix() != layout.SENTINEL
            )
        )
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise ManifestError(f"chunk size {chunk_size} is out of range")
    if reuse_chunk_size != chunk_size:
        reuse = None
    buffer = bytearray(chunk_size)
    view = memoryview(buffer)
    files: list[FileEntry] = []
    for path in paths:
        rel = path.relative_to(root).as_posix()
        if rel == layout.SENTINEL:
            continue
        _check_path(rel)
        if reuse is not None and rel in reuse:
            files.append(reuse[rel])
            continue
        chunks: list[str] = []
        size = 0
        with open(path, "rb", buffering=0) as fh:
            while True:
                if check is not None:
                    check()
                filled = _read_full(fh, view)
                if not filled:
                    break
                chunks.append(hash_chunk(algo, view[:filled]))
                size += filled
                if filled < chunk_size:
                    break
        files.append(FileEntry(rel, size, tuple(chunks)))
    return Manifest.create(files, chunk_size=chunk_size, algo=algo)


def _read_full(fh: Any, view: memoryview) -> int:
    """Fill ``view`` from ``fh`` unless EOF comes first; returns the bytes read."""
    filled = 0
    while filled < len(view):
        got = fh.readinto(view[filled:])
        if not got:
            break
        filled += got
    return filled


def _canonical_hash(chunk_size: int, algo: str, files: tuple[FileEntry, ...]) -> str:
    # Sorted keys, no whitespace, ASCII only: every peer encodes the same bytes.
    body = {"algo": algo, "chunk_size": chunk_size, "files": [f.to_json() for f in files]}
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return blake3.blake3(encoded.encode("ascii")).hexdigest()


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _exact_keys(data: dict[str, Any], keys: frozenset[str], what: str) -> None:
    missing, extra = keys - data.keys(), data.keys() - keys
    if missing:
        raise ManifestError(f"{what} lacks {', '.join(sorted(missing))}")
    if extra:
        raise ManifestError(f"{what} has unexpected fields {', '.join(sorted(map(str, extra)))}")


def _check_path(path: str) -> None:
    """A manifest path follows the download-path rule (:func:`layout.download_path`)."""
    try:
        layout.download_path(path)
    except layout.UnsafeDownloadPath as exc:
        raise ManifestError(f"manifest: {exc}") from None


def _file_from_json(item: Any, chunk_size: int) -> FileEntry:
    if not isinstance(item, dict):
        raise ManifestError("a manifest file entry is not a JSON object")
    _exact_keys(item, _FILE_KEYS, "a manifest file entry")
    path, size, chunks = item["path"], item["size"], item["chunks"]
    if not isinstance(path, str):
        raise ManifestError("a manifest file path is not a string")
    _check_path(path)
    if not _is_int(size) or size < 0:
        raise ManifestError(f"manifest file {path!r} has a bad size {size!r}")
    if not isinstance(chunks, list) or not all(
        isinstance(c, str) and _HEX64.match(c) for c in chunks
    ):
        raise ManifestError(f"manifest file {path!r} has malformed chunk hashes")
    if len(chunks) != chunk_count(size, chunk_size):
        raise ManifestError(
            f"manifest file {path!r} has {len(chunks)} chunk hashes for "
            f"{chunk_count(size, chunk_size)} chunks"
        )
    return FileEntry(path, size, tuple(chunks))


def _check_paths(files: tuple[FileEntry, ...]) -> None:
    """Paths are strictly sorted (so unique) and no file is also another's folder."""
    paths = [f.path for f in files]
    for before, after in zip(paths, paths[1:], strict=False):
        if not before < after:
            raise ManifestError(f"manifest paths are not sorted and unique at {after!r}")
    names = set(paths)
    for path in paths:
        parts = path.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            if prefix in names:
                raise ManifestError(f"manifest path {path!r} lies under the file {prefix!r}")
