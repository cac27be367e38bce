"""Crash safety of the local transactions, with real processes killed by SIGKILL."""

from __future__ import annotations

import errno
import hashlib
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from lanspread_core.archive.listing import check_entries
from lanspread_core.archive.treewriter import unpack_via_stream
from lanspread_core.errors import LanspreadError
from lanspread_core.install import intent, transactions
from lanspread_core.install.transactions import Outcome, Transactions
from lanspread_core.library.layout import BACKUP, INSTALLING, OWNED_MARKER, root_archives
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import load_registry
from lanspread_core.system.faults import ENV_FAULT, POINTS
from lanspread_fixture.gamesets import create_set
from lanspread_fixture.provider import FixtureProvider
from support.cli import invoke, run_cli
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import tree

GAME = "aurora"
SIZE = 96 * 1024


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    games = tmp_path_factory.mktemp("template") / "games"
    games.mkdir()
    # the fixture format keeps these 24 kill-and-recover runs independent of the
    # RAR plugins; RAR installs are covered by tests/test_local_cli.py
    create_set(games, "alpha", size=SIZE, fmt="fixture")
    return games


def _setup(tmp_path: Path, template: Path, installed: bool) -> tuple[Path, StateDir]:
    games = tmp_path / "games"
    shutil.copytree(template, games)
    state = StateDir(tmp_path / "state").ensure()
    if installed:
        tx = Transactions(games, state, load_registry())
        tx.install(GAME)
        root = games / GAME
        (root / "local" / "saves").mkdir()
        (root / "local" / "saves" / "slot1.sav").write_bytes(b"my progress")
        # a game file the user edited: update gives back the archive's version
        edited = next(p for p in (root / "local").rglob("*") if p.is_file())
        edited.write_bytes(b"edited by the user")
    return games, state


def _run(op: str, games: Path, state: StateDir, fault: str | None) -> subprocess.CompletedProcess:
    env = {ENV_FAULT: fault} if fault else {}
    # the user's save and edited file are at stake: no terminal here to ask on
    yes = ["--yes"] if op in ("update", "uninstall") else []
    return run_cli(op, GAME, *yes, "--games-dir", games, "--state-dir", state.path, env=env)


PRE_INSTALLED = {"install": False, "update": True, "uninstall": True, "remove-download": False}
#: the local transactions; a stream-install needs a peer to stream from (its own test below)
CASES = [(op, point) for op, points in POINTS.items() for point in points if op in PRE_INSTALLED]
STREAM_CASES = POINTS["stream-install"]


def test_every_fault_point_is_covered() -> None:
    assert len(CASES) + len(STREAM_CASES) == sum(len(p) for p in POINTS.values()) == 30


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, template: Path
) -> Callable[[str], tuple[dict[str, str], dict[str, str]]]:
    """Per operation, the games before it and after it ran to the end: computed once each."""
    trees: dict[str, tuple[dict[str, str], dict[str, str]]] = {}

    def old_and_new(op: str) -> tuple[dict[str, str], dict[str, str]]:
        if op not in trees:
            base = tmp_path_factory.mktemp(f"reference-{op}")
            games, state = _setup(base, template, PRE_INSTALLED[op])
            old = tree(games)
            done = _run(op, games, state, None)
            assert done.returncode == 0, done.stderr
            trees[op] = old, tree(games)
        return trees[op]

    return old_and_new


@pytest.mark.parametrize(("op", "point"), CASES)
def test_kill_at_every_step_leaves_old_or_new_state(
    tmp_path: Path,
    template: Path,
    reference: Callable[[str], tuple[dict[str, str], dict[str, str]]],
    op: str,
    point: str,
) -> None:
    # the old and the new state: the same operation, run to the end on a copy
    old, new = reference(op)
    games, state = _setup(tmp_path / "crash", template, PRE_INSTALLED[op])
    assert tree(games) == old  # the reference started where this run starts
    assert old != new
    crashed = _run(op, games, state, point)
    assert crashed.returncode == -9, f"fault {point} never fired: {crashed.stderr}"

    rec = run_cli("recover", "--games-dir", games, "--state-dir", state.path)
    assert rec.returncode == 0, rec.stderr
    after = tree(games)
    assert after in (old, new), f"after a crash at {point} the game is neither old nor new"
    assert not any(INSTALLING in k or BACKUP in k or OWNED_MARKER in k for k in after)
    assert intent.read(state, GAME) is None
    if op == "update":
        assert after[f"{GAME}/local/saves/slot1.sav"] == hashlib.sha256(b"my progress").hexdigest()


def test_recovery_leaves_unowned_reserved_folders_alone(tmp_path: Path, template: Path) -> None:
    games, state = _setup(tmp_path, template, installed=False)
    root = games / GAME
    for name in (INSTALLING, BACKUP):
        (root / name).mkdir()
        (root / name / "precious.txt").write_text("not ours")
    notes = Transactions(games, state, load_registry()).recover()
    assert (root / INSTALLING / "precious.txt").read_text() == "not ours"
    assert (root / BACKUP / "precious.txt").read_text() == "not ours"
    assert any("left" in n and "alone" in n for n in notes)


def test_recovery_removes_owned_leftover_staging(tmp_path: Path, template: Path) -> None:
    games, state = _setup(tmp_path, template, installed=False)
    staging = games / GAME / INSTALLING
    staging.mkdir()
    (staging / OWNED_MARKER).write_text("x")
    Transactions(games, state, load_registry()).recover()
    assert not staging.exists()


@pytest.mark.parametrize(
    ("game", "reason"),
    [
        ("a/b", "not a game id"),
        ("..", "not a game id"),
        ("/etc", "not a game id"),
        ("local", "not a game id"),
    ],
)
def test_remove_download_refuses_bad_ids(tmp_path: Path, template: Path, game: str, reason: str):
    games, state = _setup(tmp_path, template, installed=False)
    before = tree(games)
    proc = invoke("remove-download", game, "--games-dir", games, "--state-dir", state.path)
    assert proc.returncode == 2 and reason in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert tree(games) == before


def test_remove_download_refuses_symlinked_installed_busy_and_unsentinelled(
    tmp_path: Path, template: Path
) -> None:
    games, state = _setup(tmp_path, template, installed=True)
    tx = Transactions(games, state, load_registry())
    (games / "linked").symlink_to(games / "borealis")
    with pytest.raises(LanspreadError, match="symbolic link"):
        tx.remove_download("linked")
    with pytest.raises(LanspreadError, match="is installed"):
        tx.remove_download(GAME)
    (games / "borealis" / "version.ini").unlink()
    with pytest.raises(LanspreadError, match="not a complete download"):
        tx.remove_download("borealis")
    ops = OperationTable()
    busy = Transactions(games, state, load_registry(), ops=ops)
    ops.begin("borealis", "download")
    with pytest.raises(LanspreadError, match="busy with download"):
        busy.remove_download("borealis")
    assert (games / "borealis").is_dir() and (games / GAME / "local").is_dir()


def test_install_refused_when_installed_and_update_refused_when_not(
    tmp_path: Path, template: Path
) -> None:
    games, state = _setup(tmp_path, template, installed=True)
    tx = Transactions(games, state, load_registry())
    with pytest.raises(LanspreadError, match="already installed"):
        tx.install(GAME)
    with pytest.raises(LanspreadError, match="not installed"):
        tx.update("borealis")


# --- after the commit point ------------------------------------------------------


def _fill(games: Path) -> Callable[[Path], Outcome]:
    """A stream-install's fill that unpacks the game's own archives into staging."""

    def fill(staging: Path) -> Outcome:
        archives = root_archives(games / GAME)
        provider = FixtureProvider()
        listing = check_entries(provider.entries(archives))
        unpack_via_stream(provider, archives, staging, listing=listing, keep=(OWNED_MARKER,))
        return Outcome(GAME, "stream-install", None, listing.files, listing.total)

    return fill


def _transact(op: str, games: Path, state: StateDir) -> Outcome:
    tx = Transactions(games, state, load_registry())
    if op == "stream-install":
        return tx.stream_install(GAME, _fill(games), source="a test")
    work: Callable[[str], Outcome] = getattr(tx, op)
    return work(GAME)


def _fail(*_args: object) -> None:
    raise OSError(errno.EIO, "Input/output error")


@pytest.mark.parametrize("step", ["marker", "intent"])
@pytest.mark.parametrize("op", ["install", "update", "stream-install"])
def test_tidying_up_after_the_commit_cannot_fail_the_operation(
    tmp_path: Path,
    template: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    op: str,
    step: str,
) -> None:
    installed = op == "update"
    games, state = _setup(tmp_path / "reference", template, installed)
    _transact(op, games, state)
    new = tree(games)
    games, state = _setup(tmp_path / "failing", template, installed)
    if step == "marker":
        monkeypatch.setattr(transactions, "_unmark", _fail)
    else:
        monkeypatch.setattr(intent, "clear", _fail)
    outcome = _transact(op, games, state)  # committed: no exception
    assert outcome.game_id == GAME and (games / GAME / "local").is_dir()
    assert intent.read(state, GAME) is not None  # kept for recovery: it proves the leftovers ours
    assert f"{op} of {GAME} is done, but tidying up after it failed" in caplog.text
    monkeypatch.undo()
    assert (tree(games) != new) == (step == "marker")  # the marker is left in local/
    Transactions(games, state, load_registry()).recover()
    assert tree(games) == new
    assert intent.read(state, GAME) is None


def test_stream_install_writes_an_unpack_log(tmp_path: Path, template: Path) -> None:
    games, state = _setup(tmp_path, template, installed=False)
    _transact("stream-install", games, state)
    logs = list(state.unpack_logs.glob(f"*-{GAME}-stream-install.log"))
    assert len(logs) == 1
    text = logs[0].read_text()
    assert f"stream-install {GAME} from a test" in text and text.endswith("finished\n")
    uninstalled = Transactions(games, state, load_registry())
    uninstalled.uninstall(GAME)

    def broken(staging: Path) -> Outcome:
        raise LanspreadError("the sending peer failed: gone")

    with pytest.raises(LanspreadError):
        uninstalled.stream_install(GAME, broken, source="a test")
    failed = sorted(state.unpack_logs.glob(f"*-{GAME}-stream-install.log"))[-1]
    assert failed.read_text().endswith("failed: the sending peer failed: gone\n")


# --- stream-install, killed at every step -----------------------------------------


@pytest.fixture(scope="module")
def sender(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PeerProc, Path]]:
    """A peer holding the game to stream, and the catalog; shared by the crash runs."""
    work = tmp_path_factory.mktemp("sender")
    catalog = work / "catalog.json"
    create_set(work / "games", "alpha", size=SIZE, catalog=catalog, fmt="fixture")
    with PeerProc(work, args=LOOPBACK, catalog=catalog) as peer:
        yield peer, catalog


def _stream_install(
    work: Path, sender: tuple[PeerProc, Path], fault: str | None
) -> tuple[Path, StateDir]:
    peer, catalog = sender
    env = {ENV_FAULT: fault} if fault else {}
    args = [*LOOPBACK, "--peer", peer.control]
    with PeerProc(work, args=args, catalog=catalog, env=env) as receiver:
        sources_of(receiver, GAME, 1)
        receiver.send("stream-install", game_id=GAME, wait=True)
        if fault:
            assert receiver.proc.wait(timeout=60) == -9, f"fault {fault} never fired"
        else:
            receiver.wait_event(lambda e: e.get("event") == "stream-install-finished", 60)
    return receiver.games_dir, StateDir(work / "state")


@pytest.fixture(scope="module")
def streamed(
    tmp_path_factory: pytest.TempPathFactory, sender: tuple[PeerProc, Path]
) -> dict[str, str]:
    """The receiver's games after a stream-install ran to the end: computed once."""
    games, _ = _stream_install(tmp_path_factory.mktemp("streamed"), sender, None)
    new = tree(games)
    assert f"{GAME}/local" in new
    return new


@pytest.mark.parametrize("point", STREAM_CASES)
def test_stream_install_killed_at_every_step_leaves_old_or_new_state(
    tmp_path: Path, sender: tuple[PeerProc, Path], streamed: dict[str, str], point: str
) -> None:
    new = streamed
    games, state = _stream_install(tmp_path / "crash", sender, point)
    rec = run_cli("recover", "--games-dir", games, "--state-dir", state.path)
    assert rec.returncode == 0, rec.stderr
    after = tree(games)
    assert after in ({}, new), f"after a crash at {point} the game is neither absent nor installed"
    assert intent.read(state, GAME) is None
