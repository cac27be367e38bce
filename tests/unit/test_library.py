import json
import os
import threading
from pathlib import Path

import pytest

from lanspread_core.library import index as library_mod
from lanspread_core.library import manifest as manifest_mod
from lanspread_core.library.catalog import parse_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.layout import Availability
from lanspread_core.library.manifest import build_manifest
from lanspread_core.library.statedir import StateDir

CATALOG = parse_catalog(
    {
        "games": [
            {"id": "ready", "name": "Ready Game", "version": "1.0"},
            {"id": "old", "name": "Old Game", "version": "2.0"},
            {"id": "streamed", "name": "Streamed", "version": "1.0"},
            {"id": "busy", "name": "Busy", "version": "1.0"},
            {"id": "broken", "name": "Broken", "version": "1.0"},
            {"id": "nowhere", "name": "Not on disk", "version": "1.0"},
        ]
    }
)


def make_game(games: Path, game_id: str, version: str | None = "1.0", archives: int = 2) -> Path:
    root = games / game_id
    root.mkdir(parents=True, exist_ok=True)
    for i in range(archives):
        (root / f"data{i}.eti").write_bytes(f"{game_id}-{i}".encode() * 100)
    if version is not None:
        (root / "version.ini").write_text(f"{version}\n")
    return root


@pytest.fixture
def games(tmp_path: Path) -> Path:
    games = tmp_path / "games"
    make_game(games, "ready")
    make_game(games, "old", "1.0")
    streamed = make_game(games, "streamed", None, archives=0)
    (streamed / "local").mkdir()
    (streamed / "local" / "game.exe").write_bytes(b"exe")
    make_game(games, "busy")
    make_game(games, "broken", None)
    (games / "broken" / "version.ini").write_bytes(b"\xff\xfe not a version")
    make_game(games, "homebrew")  # not in the catalog
    (games / ".hidden").mkdir()
    (games / "bad name!").mkdir()
    (games / "afile").write_bytes(b"not a root")
    return games


@pytest.fixture
def state(tmp_path: Path) -> StateDir:
    return StateDir(tmp_path / "state")


class CountingHasher:
    def __init__(self) -> None:
        self.roots: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, root: Path, **kwargs):
        with self.lock:
            self.roots.append(root.name)
        return build_manifest(root, **kwargs)


@pytest.fixture
def hasher(monkeypatch: pytest.MonkeyPatch) -> CountingHasher:
    counting = CountingHasher()
    monkeypatch.setattr(library_mod, "build_manifest", counting)
    return counting


def test_scan_lists_games_with_availability(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    assert lib.refresh({"busy": "update"}) is True
    by_id = {g.id: g for g in lib.games()}
    assert sorted(by_id) == ["broken", "busy", "homebrew", "old", "ready", "streamed"]
    assert {k: g.availability for k, g in by_id.items()} == {
        "ready": Availability.READY,
        "old": Availability.OUTDATED,
        "streamed": Availability.LOCAL_ONLY,
        "busy": Availability.BUSY,
        "broken": Availability.OUTDATED,
        "homebrew": Availability.UNLISTED,
    }
    ready = by_id["ready"]
    assert (ready.name, ready.catalog_version, ready.local_version) == ("Ready Game", "1.0", "1.0")
    assert ready.downloaded and not ready.installed and ready.error is None
    manifest = lib.manifest("ready")
    assert manifest is not None and ready.manifest_hash == manifest.manifest_hash
    assert ready.size == manifest.total_size == 2 * len(b"ready-0") * 100
    assert [f.path for f in manifest.files] == ["data0.eti", "data1.eti"]

    assert by_id["old"].local_version == "1.0" and by_id["old"].catalog_version == "2.0"
    assert by_id["streamed"].installed and not by_id["streamed"].downloaded
    assert by_id["streamed"].size == 0 and lib.manifest("streamed") is None
    assert by_id["homebrew"].name == "homebrew" and by_id["homebrew"].catalog_version is None
    # A broken version.ini: listed, with one sentence, never Ready, no manifest.
    broken = by_id["broken"]
    assert broken.error and "\n" not in broken.error and "version.ini" in broken.error
    assert broken.local_version is None and lib.manifest("broken") is None
    # Busy roots are not hashed while their operation runs.
    assert "busy" not in hasher.roots
    assert sorted(hasher.roots) == ["homebrew", "old", "ready"]
    assert lib.game("nowhere") is None and lib.game("ready") == ready


def test_to_json(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    data = {g["id"]: g for g in (g.to_json() for g in lib.games())}
    json.dumps(data)  # serialisable
    ready = data["ready"]
    assert ready["availability"] == "ready" and ready["version"] == "1.0"
    for key in ("id", "name", "version", "downloaded", "installed", "availability", "size"):
        assert key in ready
    assert "error" not in ready and "error" in data["broken"]


def test_busy_kinds(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh({"ready": "download"})
    assert lib.game("ready").availability is Availability.DOWNLOADING
    rev = lib.rev
    # The operation ended, but it changed the disk: busy until rescanned.
    assert lib.set_busy({}) is False
    assert lib.game("ready").availability is Availability.DOWNLOADING
    assert lib.refresh_game("ready") is True
    assert lib.game("ready").availability is Availability.READY
    assert lib.rev == rev + 1
    assert lib.set_busy({"ready": "uninstall"}) is True
    assert lib.game("ready").availability is Availability.BUSY
    assert lib.rev == rev + 2


def test_warm_rescan_does_not_rehash_or_bump(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    assert lib.refresh() is True
    rev, before = lib.rev, lib.games()
    hasher.roots.clear()
    assert lib.refresh() is False
    assert lib.refresh_game("ready") is False
    assert hasher.roots == []
    assert lib.rev == rev and lib.games() == before


def test_changed_archive_rehashes_that_root_only(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    rev, old_hash = lib.rev, lib.game("ready").manifest_hash
    hasher.roots.clear()
    archive = games / "ready" / "data1.eti"
    archive.write_bytes(b"new bytes")
    assert lib.refresh() is True
    assert hasher.roots == ["ready"]
    assert lib.rev == rev + 1
    assert lib.game("ready").manifest_hash != old_hash
    assert lib.game("ready").size == len(b"ready-0") * 100 + len(b"new bytes")

    # Same bytes, new mtime: rehashed, but the state is unchanged so the rev stays.
    hasher.roots.clear()
    st = archive.stat()
    os.utime(archive, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert lib.refresh() is False
    assert hasher.roots == ["ready"]
    assert lib.rev == rev + 1


def test_rehash_reuses_unchanged_files(games: Path, state: StateDir, monkeypatch) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    seen: list[dict] = []

    def spy(root: Path, **kwargs):
        seen.append(kwargs.get("reuse") or {})
        return build_manifest(root, **kwargs)

    monkeypatch.setattr(library_mod, "build_manifest", spy)
    (games / "ready" / "data1.eti").write_bytes(b"changed")
    lib.refresh_game("ready")
    assert list(seen[0]) == ["data0.eti"]
    fresh = build_manifest(games / "ready")
    assert lib.manifest("ready") == fresh


def test_version_change_and_removal(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    rev = lib.rev
    (games / "old" / "version.ini").write_text("2.0\n")
    assert lib.refresh_game("old") is True
    assert lib.game("old").availability is Availability.READY
    (games / "ready" / "version.ini").unlink()
    assert lib.refresh() is True
    assert lib.game("ready").availability is Availability.ABSENT
    assert lib.manifest("ready") is None
    for child in (games / "homebrew").iterdir():
        child.unlink()
    (games / "homebrew").rmdir()
    assert lib.refresh_game("homebrew") is True
    assert lib.game("homebrew") is None
    assert lib.rev == rev + 3
    assert lib.refresh_game("../etc") is False and lib.refresh_game(".hidden") is False


def test_index_persists_across_instances(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    rev, before = lib.rev, lib.games()
    assert state.library_index.is_file()
    hasher.roots.clear()

    again = Library(games, state, CATALOG)
    assert again.rev == rev and again.games() == before  # answers before any scan
    assert again.refresh() is False
    assert hasher.roots == []
    assert again.manifest("ready") == lib.manifest("ready")
    (games / "ready" / "data0.eti").write_bytes(b"x")
    assert again.refresh() is True
    assert hasher.roots == ["ready"]
    assert Library(games, state, CATALOG).rev == rev + 1


def test_corrupt_index_is_a_cache_miss(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    rev = lib.rev
    state.library_index.write_text("{not json")
    fresh = Library(games, state, CATALOG)
    assert fresh.rev > rev  # never goes backwards
    hasher.roots.clear()
    assert fresh.refresh() is True
    assert sorted(hasher.roots) == ["busy", "homebrew", "old", "ready"]
    assert {g.id for g in fresh.games()} == {g.id for g in lib.games()}


def test_missing_games_dir_is_empty(tmp_path: Path, state: StateDir) -> None:
    lib = Library(tmp_path / "nope", state, CATALOG)
    assert lib.refresh() is False
    assert lib.games() == []


def test_set_catalog(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    newer = parse_catalog({"games": [{"id": "homebrew", "version": "1.0"}]})
    assert lib.set_catalog(newer) is True
    assert lib.game("homebrew").availability is Availability.READY
    assert lib.game("ready").availability is Availability.UNLISTED


def test_lost_or_damaged_manifest_files_are_rehashed(games: Path, state: StateDir, hasher) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    digest = lib.game("ready").manifest_hash
    assert (state.manifests / f"{digest}.json").is_file()

    # A damaged file: the reader gets None (never a wrong manifest), the next scan rehashes.
    fresh = Library(games, state, CATALOG)  # empty in-memory cache
    (state.manifests / f"{digest}.json").write_text('{"algo": "blake3"}')
    assert fresh.manifest("ready") is None
    hasher.roots.clear()
    fresh.refresh()
    assert hasher.roots == ["ready"]
    assert fresh.manifest("ready").manifest_hash == digest

    # A missing file: noticed by the scan itself.
    (state.manifests / f"{digest}.json").unlink()
    again = Library(games, state, CATALOG)
    hasher.roots.clear()
    again.refresh()
    assert hasher.roots == ["ready"]
    assert again.manifest("ready").manifest_hash == digest


def test_a_manifest_cached_with_another_chunk_size_is_rehashed(
    games: Path, state: StateDir, hasher, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    before = lib.manifest("ready")
    assert before is not None and before.chunk_size == manifest_mod.MIN_AUTO_CHUNK_SIZE
    # another version picks another size for a game this small (as 64 chunks did)
    monkeypatch.setattr(manifest_mod, "MIN_AUTO_CHUNK_SIZE", 2 * before.chunk_size)
    upgraded = Library(games, state, CATALOG)
    hasher.roots.clear()
    assert upgraded.refresh() is True
    assert sorted(hasher.roots) == ["busy", "homebrew", "old", "ready"]
    after = upgraded.manifest("ready")
    assert after is not None and after.chunk_size == 2 * before.chunk_size
    assert after.manifest_hash != before.manifest_hash
    hasher.roots.clear()
    assert upgraded.refresh() is False and hasher.roots == []  # once


def test_unreferenced_manifest_files_are_swept(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    old = lib.game("ready").manifest_hash
    (games / "ready" / "data0.eti").write_bytes(b"new")
    lib.refresh()
    assert (state.manifests / f"{old}.json").is_file()  # kept while this process runs
    Library(games, state, CATALOG)
    assert not (state.manifests / f"{old}.json").exists()
    assert (state.manifests / f"{lib.game('ready').manifest_hash}.json").is_file()


def test_a_long_hash_does_not_block_other_games(
    games: Path, state: StateDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    release, started = threading.Event(), threading.Event()

    def slow(root: Path, **kwargs):
        if root.name == "homebrew":
            started.set()
            assert release.wait(5)
        return build_manifest(root, **kwargs)

    monkeypatch.setattr(library_mod, "build_manifest", slow)
    (games / "homebrew" / "data0.eti").write_bytes(b"big game being copied in")
    worker = threading.Thread(target=lib.refresh_game, args=("homebrew",))
    worker.start()
    try:
        assert started.wait(5)
        # Another game's rescan and the readers go on meanwhile.
        # (No new bytes to hash there, so it does not wait for the hashing slot.)
        (games / "old" / "version.ini").write_text("2.0\n")
        (games / "old" / "local").mkdir()
        assert lib.refresh_game("old") is True
        assert lib.game("old").availability is Availability.READY
        assert lib.game("old").installed
        assert lib.set_busy({"ready": "update"}) is True
        # A full refresh skips the root that is being rescanned.
        assert lib.refresh() is False
        assert lib.game("homebrew").manifest_hash is not None
    finally:
        release.set()
        worker.join(5)
    assert lib.manifest("homebrew").file("data0.eti").size == len(b"big game being copied in")


def test_snapshot_reads_rev_and_games_together(games: Path, state: StateDir) -> None:
    lib = Library(games, state, CATALOG)
    lib.refresh()
    rev, listed = lib.snapshot()
    assert rev == lib.rev and listed == lib.games()
