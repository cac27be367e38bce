import copy
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import blake3
import pytest

from lanspread_core.library.manifest import (
    CHUNK_SIZE,
    MIN_AUTO_CHUNK_SIZE,
    TARGET_CHUNKS,
    FileEntry,
    Manifest,
    ManifestError,
    build_manifest,
    chunk_ranges,
    chunk_size_for,
    hash_chunk,
)

SMALL = 1024  # MIN_CHUNK_SIZE: lets multi-chunk cases use tiny files


def b3(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def make_root(tmp_path: Path, files: dict[str, bytes]) -> Path:
    root = tmp_path / "game"
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def test_chunking_edges(tmp_path: Path) -> None:
    data_exact = os.urandom(2 * SMALL)
    data_multi = os.urandom(2 * SMALL + 7)
    root = make_root(
        tmp_path,
        {"empty.eti": b"", "exact.eti": data_exact, "multi.eti": data_multi, "one.eti": b"x"},
    )
    m = build_manifest(root, chunk_size=SMALL)
    files = {f.path: f for f in m.files}
    assert files["empty.eti"] == FileEntry("empty.eti", 0, ())
    assert files["exact.eti"].chunks == (b3(data_exact[:SMALL]), b3(data_exact[SMALL:]))
    assert files["multi.eti"].chunks == (
        b3(data_multi[:SMALL]),
        b3(data_multi[SMALL : 2 * SMALL]),
        b3(data_multi[2 * SMALL :]),
    )
    assert files["one.eti"].chunks == (b3(b"x"),)
    assert m.total_size == 4 * SMALL + 8
    assert m.chunk_count == 6
    ranges = [r for r in chunk_ranges(m) if r.path == "multi.eti"]
    assert [(r.index, r.offset, r.length) for r in ranges] == [
        (0, 0, SMALL),
        (1, SMALL, SMALL),
        (2, 2 * SMALL, 7),
    ]
    assert all(r.hash == files["multi.eti"].chunks[r.index] for r in ranges)
    assert [r.length for r in chunk_ranges(m) if r.path == "exact.eti"] == [SMALL, SMALL]


def test_default_chunk_size_hashes_whole_small_file(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"a.eti": b"hello"})
    m = build_manifest(root)
    assert m.chunk_size == MIN_AUTO_CHUNK_SIZE and m.algo == "blake3"
    assert m.files == (FileEntry("a.eti", 5, (b3(b"hello"),)),)


def test_the_chunk_size_follows_the_size_of_the_game() -> None:
    KiB, MiB, GiB = 1024, 1024 * 1024, 1024**3
    assert chunk_size_for(0) == chunk_size_for(5) == chunk_size_for(32 * MiB) == 256 * KiB
    assert chunk_size_for(48 * MiB) == 512 * KiB  # 96 chunks
    assert chunk_size_for(128 * MiB) == 1 * MiB
    assert chunk_size_for(256 * MiB) == 2 * MiB
    assert chunk_size_for(512 * MiB) == chunk_size_for(50 * GiB) == CHUNK_SIZE
    for size in (1, 10 * MiB + 1, 300 * MiB, 5 * GiB):
        chunks = -(-size // chunk_size_for(size))
        assert chunks <= TARGET_CHUNKS or chunk_size_for(size) == CHUNK_SIZE


def test_excludes_sentinel_local_reserved_and_symlinks(tmp_path: Path) -> None:
    root = make_root(
        tmp_path,
        {
            "version.ini": b"1.0\n",
            "a.eti": b"a",
            "sub/version.ini": b"nested sentinel-named file is data",
            "sub/deep/b.bin": b"b",
            "local/game.exe": b"user",
            ".local.installing/x": b"staging",
            ".local.backup/y": b"backup",
            ".version.ini.tmp": b"2.0",
            ".version.ini.discarded": b"0.9",
        },
    )
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (root / "link.eti").symlink_to(root / "a.eti")
    (root / "linkdir").symlink_to(outside)
    m = build_manifest(root)
    assert [f.path for f in m.files] == ["a.eti", "sub/deep/b.bin", "sub/version.ini"]


def test_json_round_trip_and_stable_hash(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"b.eti": os.urandom(3000), "a.eti": b"", "d/c": b"c"})
    m = build_manifest(root, chunk_size=SMALL)
    again = Manifest.from_json(m.to_json())
    assert again == m
    assert build_manifest(root, chunk_size=SMALL).manifest_hash == m.manifest_hash
    # Stable across processes (no dict-order or hash-seed dependence).
    code = (
        "import sys; from pathlib import Path;"
        "from lanspread_core.library.manifest import build_manifest;"
        "print(build_manifest(Path(sys.argv[1]), chunk_size=1024).manifest_hash)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(root)], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == m.manifest_hash


def test_hash_depends_on_content_and_chunk_size(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"a.eti": b"x" * 5000})
    m1 = build_manifest(root, chunk_size=SMALL)
    m2 = build_manifest(root, chunk_size=2 * SMALL)
    (root / "a.eti").write_bytes(b"y" * 5000)
    m3 = build_manifest(root, chunk_size=SMALL)
    assert len({m1.manifest_hash, m2.manifest_hash, m3.manifest_hash}) == 3


def test_reuse_skips_hashing_of_known_files(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"a.eti": b"a", "b.eti": b"b"})
    fake = FileEntry("a.eti", 1, ("0" * 64,))
    m = build_manifest(root, reuse={"a.eti": fake}, reuse_chunk_size=MIN_AUTO_CHUNK_SIZE)
    assert m.file("a.eti") is fake
    # entries hashed with another chunk size are not taken
    again = build_manifest(root, reuse={"a.eti": fake}, reuse_chunk_size=CHUNK_SIZE)
    assert again.file("a.eti") != fake
    assert m.file("b.eti") == FileEntry("b.eti", 1, (b3(b"b"),))


def test_sha256_manifests_verify(tmp_path: Path) -> None:
    root = make_root(tmp_path, {"a.eti": b"abc"})
    m = build_manifest(root, algo="sha256")
    assert m.files[0].chunks == (hashlib.sha256(b"abc").hexdigest(),)
    assert Manifest.from_json(m.to_json()) == m
    assert hash_chunk("sha256", b"abc") == m.files[0].chunks[0]


@pytest.fixture
def good(tmp_path: Path) -> dict:
    root = make_root(tmp_path, {"a.eti": os.urandom(2500), "sub/b.eti": b"b", "z": b""})
    return build_manifest(root, chunk_size=SMALL).to_json()


def rehash(data: dict) -> dict:
    """Recompute manifest_hash over the raw fields (pinning the canonical encoding),
    so a tampered manifest fails the check aimed at, not just the hash check."""
    try:
        body = {k: data[k] for k in ("algo", "chunk_size", "files")}
    except KeyError:
        return data
    encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    data["manifest_hash"] = b3(encoded.encode())
    return data


def mutate(good: dict, fn) -> dict:
    data = copy.deepcopy(good)
    fn(data)
    return data


TAMPER = {
    "not an object": lambda d: d.clear() or d.update({"x": 1}),
    "missing key": lambda d: d.pop("algo"),
    "extra key": lambda d: d.update(extra=1),
    "unknown algo": lambda d: d.update(algo="md5"),
    "chunk size bool": lambda d: d.update(chunk_size=True),
    "chunk size str": lambda d: d.update(chunk_size="1024"),
    "chunk size tiny": lambda d: d.update(chunk_size=1),
    "files not list": lambda d: d.update(files={}),
    "file not object": lambda d: d["files"].append("x"),
    "file extra key": lambda d: d["files"][0].update(mode=0o755),
    "negative size": lambda d: d["files"][0].update(size=-1),
    "float size": lambda d: d["files"][0].update(size=2500.0),
    "bool size": lambda d: d["files"][2].update(size=False),
    "path not str": lambda d: d["files"][0].update(path=1),
    "traversal": lambda d: d["files"][0].update(path="../a.eti"),
    "absolute": lambda d: d["files"][0].update(path="/etc/passwd"),
    "backslash": lambda d: d["files"][1].update(path="sub\\b.eti"),
    "not canonical": lambda d: d["files"][1].update(path="sub//b.eti"),
    "drive": lambda d: d["files"][0].update(path="C:a.eti"),
    "under local": lambda d: d["files"][0].update(path="local/a.eti"),
    "reserved": lambda d: d["files"][0].update(path=".local.backup/a.eti"),
    "sentinel": lambda d: d["files"][0].update(path="version.ini"),
    "too few chunks": lambda d: d["files"][0]["chunks"].pop(),
    "too many chunks": lambda d: d["files"][2]["chunks"].append("0" * 64),
    "bad chunk hex": lambda d: d["files"][0]["chunks"].__setitem__(0, "X" * 64),
    "short chunk hex": lambda d: d["files"][0]["chunks"].__setitem__(0, "ab"),
    "duplicate path": lambda d: d["files"].insert(1, copy.deepcopy(d["files"][0])),
    "unsorted": lambda d: d["files"].reverse(),
    "file and folder": lambda d: d["files"].insert(1, {"path": "sub", "size": 0, "chunks": []}),
    "surrogate": lambda d: d["files"][0].update(path="a\udcff.eti"),
}


def test_rehash_matches_the_real_encoding(good: dict) -> None:
    assert rehash(copy.deepcopy(good)) == good


@pytest.mark.parametrize("case", sorted(TAMPER))
def test_from_json_rejects_malformed(good: dict, case: str) -> None:
    data = rehash(mutate(good, TAMPER[case]))
    with pytest.raises(ManifestError) as info:
        Manifest.from_json(data)
    message = str(info.value)
    assert message and "\n" not in message
    assert "does not match" not in message, f"{case} only failed the hash check"


@pytest.mark.parametrize("payload", [None, [], "x", 3, {"files": []}])
def test_from_json_rejects_non_manifests(payload) -> None:
    with pytest.raises(ManifestError):
        Manifest.from_json(payload)


def test_from_json_rejects_tampered_content(good: dict) -> None:
    for tamper in (
        lambda d: d["files"][0]["chunks"].__setitem__(0, "0" * 64),
        lambda d: d["files"][1].update(size=1, chunks=["1" * 64]),
        lambda d: d.update(manifest_hash="0" * 64),
        lambda d: d.update(manifest_hash="zz"),
    ):
        with pytest.raises(ManifestError):
            Manifest.from_json(mutate(good, tamper))


def test_value_error_subclass() -> None:
    assert issubclass(ManifestError, ValueError)


def test_non_utf8_name_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "game"
    root.mkdir()
    (root / os.fsdecode(b"bad\xff.eti")).write_bytes(b"x")
    with pytest.raises(ManifestError, match="UTF-8"):
        build_manifest(root)
