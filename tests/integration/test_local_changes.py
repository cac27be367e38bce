"""Nothing a user made is deleted without asking: ``local-changes`` and the CLI's question.

Every install records what it put into ``local/``; ``local-changes`` names what
the user added or changed since. ``uninstall`` (and ``update``, for changed game
files) asks on a terminal and needs ``--yes`` without one; the JSONL harness
is unchanged.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import time
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD, run_cli
from support.peerproc import LOOPBACK, PeerProc

GAME = "aurora"


@pytest.fixture
def games(tmp_path: Path) -> Path:
    games = tmp_path / "games"
    games.mkdir()
    create_set(games, "alpha", size=64 * 1024, fmt="fixture")
    return games


def _cli(games: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, "--games-dir", games, "--state-dir", games.parent / "state")


def _install_and_play(games: Path) -> Path:
    """Install, then do what a player does: two saves, and one edited game file."""
    assert _cli(games, "install", GAME).returncode == 0
    local = games / GAME / "local"
    (local / "saves").mkdir()
    (local / "saves" / "slot1.sav").write_bytes(b"level 3")
    (local / "saves" / "slot2.sav").write_bytes(b"level 9")
    return local


def _edit_a_game_file(local: Path) -> str:
    edited = sorted(p for p in local.rglob("*") if p.is_file() and "saves" not in p.parts)[0]
    edited.write_bytes(b"my settings")
    return edited.relative_to(local).as_posix()


def test_local_changes_names_what_the_user_added_and_changed(games: Path, tmp_path: Path) -> None:
    (tmp_path / "peer").mkdir()
    with PeerProc(tmp_path / "peer", games_dir=games, args=LOOPBACK) as peer:
        peer.ok("install", game_id=GAME, wait=True)
        fresh = peer.ok("local-changes", game_id=GAME)
        assert fresh["known"] and fresh["added"] == 0 and fresh["changed"] == 0
        local = games / GAME / "local"
        (local / "saves").mkdir()
        (local / "saves" / "slot1.sav").write_bytes(b"level 3")
        edited = _edit_a_game_file(local)
        found = peer.ok("local-changes", game_id=GAME)
        assert found["added"] == 1 and found["sample"] == ["saves/slot1.sav"]
        assert found["changed"] == 1 and found["changed_sample"] == [edited]
        assert found["files"] == fresh["files"] + 1
        bad = peer.call("local-changes", game_id="nosuch")
        assert bad["kind"] == "error" and "nosuch" in bad["error"]
        # the JSONL harness is unchanged: it uninstalls without a question
        peer.ok("uninstall", game_id=GAME, wait=True)
        assert not local.exists()
        assert peer.ok("local-changes", game_id=GAME)["installed"] is False


def test_uninstall_without_a_terminal_needs_yes(games: Path) -> None:
    local = _install_and_play(games)
    refused = _cli(games, "uninstall", GAME)
    assert refused.returncode == 2
    assert "2 files you added (saves/slot1.sav, saves/slot2.sav)" in refused.stderr
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    assert (local / "saves" / "slot1.sav").read_bytes() == b"level 3"
    done = _cli(games, "uninstall", GAME, "--yes")
    assert done.returncode == 0, done.stderr
    assert not local.exists()


def test_uninstall_of_an_untouched_install_does_not_ask(games: Path) -> None:
    assert _cli(games, "install", GAME).returncode == 0
    done = _cli(games, "uninstall", GAME)
    assert done.returncode == 0, done.stderr
    assert not (games / GAME / "local").exists()


def test_update_asks_only_when_it_would_replace_a_changed_game_file(games: Path) -> None:
    local = _install_and_play(games)
    kept = _cli(games, "update", GAME)  # added files are kept: nothing to ask
    assert kept.returncode == 0, kept.stderr
    assert (local / "saves" / "slot2.sav").read_bytes() == b"level 9"
    edited = _edit_a_game_file(local)
    refused = _cli(games, "update", GAME)
    assert refused.returncode == 2
    assert f"1 game file you changed ({edited})" in refused.stderr
    assert (local / edited).read_bytes() == b"my settings"
    assert _cli(games, "update", GAME, "--yes").returncode == 0
    assert (local / edited).read_bytes() != b"my settings"
    assert (local / "saves" / "slot1.sav").read_bytes() == b"level 3"


def _on_terminal(argv: list[str], answer: bytes) -> tuple[int, str]:
    """Run ``argv`` with a terminal as stdin; answer its question; (exit code, what it printed)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    out = b""
    answered = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                data = os.read(master, 4096)
            except OSError:
                break
            if not data:
                break
            out += data
        if not answered and b"Go ahead?" in out:
            os.write(master, answer + b"\n")
            answered = True
        if proc.poll() is not None and not ready:
            break
    os.close(master)
    return proc.wait(10), out.decode(errors="replace")


def test_uninstall_on_a_terminal_asks_and_no_keeps_everything(games: Path) -> None:
    local = _install_and_play(games)
    argv = [str(LANSPREAD), "uninstall", GAME, "--games-dir", str(games)]
    argv += ["--state-dir", str(games.parent / "state")]
    code, said = _on_terminal(argv, b"n")
    assert "You added 2 files since the install" in said
    assert "saves/slot1.sav, saves/slot2.sav" in said
    assert code == 1 and "nothing was deleted" in said
    assert (local / "saves" / "slot2.sav").read_bytes() == b"level 9"
    code, said = _on_terminal(argv, b"y")
    assert code == 0, said
    assert not local.exists()


def test_uninstall_through_a_running_peer_asks_too(games: Path, tmp_path: Path) -> None:
    (tmp_path / "peer").mkdir()
    with PeerProc(tmp_path / "peer", games_dir=games, args=LOOPBACK) as peer:
        peer.ok("install", game_id=GAME, wait=True)
        local = games / GAME / "local"
        (local / "notes.txt").write_text("mine")
        state = ["--state-dir", str(tmp_path / "peer" / "state")]
        refused = run_cli("uninstall", GAME, *state)
        assert refused.returncode == 2
        assert "1 file you added (notes.txt)" in refused.stderr
        assert (local / "notes.txt").read_text() == "mine"
        done = run_cli("uninstall", GAME, "--yes", *state)
        assert done.returncode == 0, done.stderr
        assert not local.exists()
