import shutil
import threading
from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from lanspread_core.library import index as library_mod
from lanspread_core.library.catalog import parse_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.layout import Availability
from lanspread_core.library.manifest import build_manifest
from lanspread_core.library.monitor import run_monitor
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.statedir import StateDir

CATALOG = parse_catalog(
    {"games": [{"id": g, "version": "1.0"} for g in ("alpha", "beta", "gamma", "delta")]}
)
DEADLINE = 1.0  # the brief's promise: changes show within a second


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_game(games: Path, game_id: str, version: str | None = "1.0") -> Path:
    root = games / game_id
    root.mkdir(parents=True, exist_ok=True)
    (root / "a.eti").write_bytes(b"a" * 3000)
    (root / "b.eti").write_bytes(b"b" * 2000)
    if version is not None:
        (root / "version.ini").write_text(f"{version}\n")
    return root


class Harness:
    def __init__(self, tmp_path: Path) -> None:
        self.games = tmp_path / "games"
        self.games.mkdir()
        make_game(self.games, "alpha")
        make_game(self.games, "beta")
        self.ops = OperationTable()
        self.library = Library(self.games, StateDir(tmp_path / "state"), CATALOG)
        self.revs: list[int] = []
        self.refreshed: list[str] = []

    async def on_change(self, rev: int) -> None:
        self.revs.append(rev)

    def availability(self, game_id: str) -> Availability | None:
        game = self.library.game(game_id)
        return game.availability if game else None

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = DEADLINE) -> None:
        with anyio.fail_after(timeout):
            while not predicate():
                await anyio.sleep(0.01)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


@pytest.fixture
def count_refresh_game(monkeypatch: pytest.MonkeyPatch, harness: Harness) -> list[str]:
    calls: list[str] = []
    real = Library.refresh_game

    def spy(self, game_id, *args, **kwargs):
        calls.append(game_id)
        return real(self, game_id, *args, **kwargs)

    monkeypatch.setattr(Library, "refresh_game", spy)
    return calls


@pytest.mark.anyio
async def test_initial_scan_then_started(harness: Harness) -> None:
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, harness.library, harness.ops, harness.on_change)
        assert harness.availability("alpha") is Availability.READY
        assert harness.revs == [harness.library.rev]
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_changes_show_up_within_a_second(harness: Harness) -> None:
    h = harness
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, h.on_change)
        alpha = h.games / "alpha"

        # Change an archive: new manifest hash.
        old_hash = h.library.game("alpha").manifest_hash
        (alpha / "a.eti").write_bytes(b"changed")
        await h.wait_for(lambda: h.library.game("alpha").manifest_hash != old_hash)

        # Delete the sentinel: no longer downloaded.
        (alpha / "version.ini").unlink()
        await h.wait_for(lambda: h.availability("alpha") is Availability.ABSENT)

        # Write it back with another version (atomically, as the downloader does).
        tmp = alpha / ".version.ini.tmp"
        tmp.write_text("0.9\n")
        tmp.rename(alpha / "version.ini")
        await h.wait_for(lambda: h.availability("alpha") is Availability.OUTDATED)

        # Delete an archive.
        size = h.library.game("alpha").size
        (alpha / "b.eti").unlink()
        await h.wait_for(lambda: h.library.game("alpha").size == size - 2000)

        # A new root appears and gets its own watch.
        gamma = make_game(h.games, "gamma")
        await h.wait_for(lambda: h.availability("gamma") is Availability.READY)
        (gamma / "a.eti").write_bytes(b"later")
        await h.wait_for(lambda: h.library.manifest("gamma").file("a.eti").size == len(b"later"))

        # A root is removed, then made again under the same name (a new inode).
        shutil.rmtree(h.games / "beta")
        await h.wait_for(lambda: h.library.game("beta") is None)
        make_game(h.games, "beta", "2.0")
        await h.wait_for(lambda: h.availability("beta") is Availability.OUTDATED)
        (h.games / "beta" / "version.ini").write_text("1.0\n")
        await h.wait_for(lambda: h.availability("beta") is Availability.READY)

        # Installing (local/ appearing) is seen too.
        (h.games / "beta" / "local").mkdir()
        await h.wait_for(lambda: h.library.game("beta").installed)

        await h.wait_for(lambda: h.revs and h.revs[-1] == h.library.rev)
        assert h.revs == sorted(set(h.revs))  # increasing, no repeats
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_scratch_names_do_not_trigger_rescans(harness: Harness, count_refresh_game) -> None:
    h = harness
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, h.on_change)
        (h.games / "alpha" / ".version.ini.tmp").write_text("2.0\n")
        (h.games / "alpha" / ".local.installing").mkdir()
        (h.games / "alpha" / "a.eti").read_bytes()  # reads are not changes
        (h.games / ".hidden").mkdir()
        # A later real change is the marker that the scratch events were processed.
        (h.games / "beta" / "b.eti").write_bytes(b"x")
        await h.wait_for(lambda: "beta" in count_refresh_game)
        await anyio.sleep(0.2)
        assert "alpha" not in count_refresh_game
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_busy_game_is_gated_then_rescanned(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    hashed: list[str] = []
    lock = threading.Lock()

    def counting(root: Path, **kwargs):
        with lock:
            hashed.append(root.name)
        return build_manifest(root, **kwargs)

    monkeypatch.setattr(library_mod, "build_manifest", counting)
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, h.on_change)
        hashed.clear()
        h.ops.begin("alpha", "update")
        await h.wait_for(lambda: h.availability("alpha") is Availability.BUSY)
        await h.wait_for(lambda: h.revs[-1] == h.library.rev)
        old_hash = h.library.game("alpha").manifest_hash
        for i in range(5):
            (h.games / "alpha" / "a.eti").write_bytes(b"update %d" % i)
        (h.games / "beta" / "a.eti").write_bytes(b"beta changed")  # not gated
        await h.wait_for(lambda: "beta" in hashed)
        await anyio.sleep(0.3)
        assert "alpha" not in hashed  # nothing of alpha was read while busy
        assert h.availability("alpha") is Availability.BUSY
        assert h.library.game("alpha").manifest_hash == old_hash

        h.ops.end("alpha")
        await h.wait_for(lambda: h.availability("alpha") is Availability.READY)
        assert h.library.game("alpha").manifest_hash != old_hash
        assert hashed.count("alpha") == 1
        tg.cancel_scope.cancel()
    assert h.ops._listeners == []  # the monitor unsubscribed on exit


@pytest.mark.anyio
async def test_burst_is_debounced(harness: Harness, count_refresh_game) -> None:
    h = harness
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, h.on_change)
        for i in range(20):
            (h.games / "alpha" / f"extra{i}.eti").write_bytes(b"x")
        await h.wait_for(lambda: len(h.library.manifest("alpha").files) == 22)
        await anyio.sleep(0.2)
        assert 1 <= count_refresh_game.count("alpha") <= 3
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_fallback_scan_runs(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    full_scans = 0
    real = Library.refresh

    def spy(self, *args, **kwargs):
        nonlocal full_scans
        full_scans += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Library, "refresh", spy)
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: run_monitor(
                h.library, h.ops, h.on_change, fallback_interval=0.05, task_status=task_status
            )
        )
        await h.wait_for(lambda: full_scans >= 3)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_fallback_finds_what_events_missed(harness: Harness) -> None:
    h = harness
    sub = h.games / "alpha" / "sub"
    sub.mkdir()
    (sub / "c.eti").write_bytes(b"c")
    async with anyio.create_task_group() as tg:
        await tg.start(
            lambda task_status: run_monitor(
                h.library, h.ops, h.on_change, fallback_interval=0.2, task_status=task_status
            )
        )
        assert h.library.manifest("alpha").file("sub/c.eti") is not None
        # A file added one level down: no event reaches the non-recursive
        # watches, but the subfolder's mtime is in the fingerprint, so the
        # fallback scan finds it.
        (sub / "d.eti").write_bytes(b"d")
        await h.wait_for(lambda: h.library.manifest("alpha").file("sub/d.eti") is not None)
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_cancel_stops_observer(harness: Harness) -> None:
    before = {t.ident for t in threading.enumerate()}
    with anyio.fail_after(2):
        async with anyio.create_task_group() as tg:
            await tg.start(run_monitor, harness.library, harness.ops, harness.on_change)
            tg.cancel_scope.cancel()
    leftover = [t for t in threading.enumerate() if t.ident not in before and "AnyIO" not in t.name]
    assert leftover == []


class Gate:
    """A build_manifest stand-in that holds one game's hash until released."""

    def __init__(self, game_id: str, *, after: bool = False) -> None:
        self.game_id, self.after = game_id, after
        self.entered, self.release = threading.Event(), threading.Event()
        self.calls: list[str] = []

    def __call__(self, root: Path, **kwargs):
        self.calls.append(root.name)
        if root.name == self.game_id and not self.release.is_set():
            result = build_manifest(root, **kwargs) if self.after else None
            self.entered.set()
            assert self.release.wait(5)
            if result is not None:
                return result
        return build_manifest(root, **kwargs)


@pytest.mark.anyio
async def test_long_hash_does_not_delay_other_games(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    gate = Gate("gamma")
    monkeypatch.setattr(library_mod, "build_manifest", gate)
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(run_monitor, h.library, h.ops, h.on_change)
            make_game(h.games, "gamma")
            await h.wait_for(gate.entered.is_set)
            (h.games / "beta" / "version.ini").write_text("0.5\n")
            await h.wait_for(lambda: h.availability("beta") is Availability.OUTDATED)
            gate.release.set()
            await h.wait_for(lambda: h.availability("gamma") is Availability.READY)
            tg.cancel_scope.cancel()
    finally:
        gate.release.set()


@pytest.mark.anyio
async def test_events_during_a_rescan_loop_once_more(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    gate = Gate("alpha", after=True)  # hashes the old bytes, then waits
    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, h.on_change)
        monkeypatch.setattr(library_mod, "build_manifest", gate)
        try:
            (h.games / "alpha" / "a.eti").write_bytes(b"first")
            await h.wait_for(gate.entered.is_set)
            (h.games / "alpha" / "a.eti").write_bytes(b"second!")
            await anyio.sleep(0.3)  # the event lands while the rescan still runs
            gate.release.set()
            await h.wait_for(
                lambda: h.library.manifest("alpha").file("a.eti").size == len(b"second!")
            )
            assert gate.calls.count("alpha") == 2
        finally:
            gate.release.set()
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_no_stale_state_after_an_operation(harness: Harness) -> None:
    h = harness
    seen: list[Availability | None] = []

    async def on_change(rev: int) -> None:
        seen.append(h.availability("alpha"))

    async with anyio.create_task_group() as tg:
        await tg.start(run_monitor, h.library, h.ops, on_change)
        h.ops.begin("alpha", "remove")
        await h.wait_for(lambda: h.availability("alpha") is Availability.BUSY)
        for name in ("version.ini", "a.eti", "b.eti"):
            (h.games / "alpha" / name).unlink()
        h.ops.end("alpha")
        await h.wait_for(lambda: h.availability("alpha") is Availability.ABSENT)
        await h.wait_for(lambda: seen[-1] is Availability.ABSENT)
        # Straight from BUSY to the new state: never the pre-operation READY again.
        assert seen == [Availability.READY, Availability.BUSY, Availability.ABSENT]
        tg.cancel_scope.cancel()
