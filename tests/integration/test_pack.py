"""``lanspread pack`` on a real folder tree, then real installs and a stream-install.

The tree has nested folders, empty files, an empty folder, unicode names, a
1 GiB file and a few hundred small ones. What any provider and a peer's
stream-install make of the packed root must be the same tree, byte for byte.
``kill -9`` and Ctrl-C during ``pack`` must leave no root and no catalog
entry, only a staging folder the next run removes.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_core.library.layout import pack_staging
from support.cli import LANSPREAD, _clean_env, run_cli
from support.needs import require
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import tree

require("libarchive")

GIB = 1 << 30
GAME = "big-game"


def _make_source(top: Path) -> Path:
    """The game folder: the big file sorts between small ones, so it splits three ways."""
    rnd = random.Random(14)
    (top / "Aux données" / "cfg").mkdir(parents=True)
    (top / "Maps" / "épisode 1").mkdir(parents=True)
    (top / "saves" / "empty").mkdir(parents=True)
    (top / "Aux données" / "cfg" / "vide.ini").write_bytes(b"")
    (top / "Maps" / "zero.bsp").write_bytes(b"")
    (top / "ゲーム.exe").write_bytes(b"MZ" + rnd.randbytes(200_000))
    for i in range(300):
        folder = top / ("Aux données" if i % 2 else "Maps/épisode 1")
        text = b" ".join(
            rnd.choice((b"map", b"entity", b"origin", b"light")) for _ in range(i * 50)
        )
        (folder / f"f{i:03}.dat").write_bytes(text if i % 3 else rnd.randbytes(1024 * (i % 64)))
    block = rnd.randbytes(1 << 20)  # stored, so a repeated block costs no CPU and no ratio
    with open(top / "Data.pak", "wb") as big:
        for _ in range(GIB // len(block)):
            big.write(block)
    return top


@pytest.fixture(scope="module")
def packed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path, dict]]:
    """(source, games dir of peer a, pack's JSON result)."""
    base = tmp_path_factory.mktemp("pack")
    source = _make_source(base / "My Game")
    games = base / "a" / "games"
    games.mkdir(parents=True)
    proc = run_cli(
        "pack", source, "--id", GAME, "--version", "1.0", "--games-dir", games,
        "--split-size", "100MB", "--json", check=True, timeout=600,
    )  # fmt: skip
    yield source, games, json.loads(proc.stdout)
    shutil.rmtree(base)  # 2 GiB: not left for pytest's clean-up at the end of the run


def test_pack_splits_and_catalogs(packed: tuple[Path, Path, dict]) -> None:
    source, games, result = packed
    root = games / GAME
    assert result["archives"] == [f"{GAME}.part00{n}.eti" for n in (1, 2, 3)]
    assert sorted(os.listdir(root)) == [*result["archives"], "version.ini"]
    # the 1 GiB file alone in the middle volume
    assert (root / result["archives"][1]).stat().st_size - GIB < 1000
    assert result["size"] == sum(p.stat().st_size for p in source.rglob("*") if p.is_file())
    (game,) = json.loads((games / "catalog.json").read_text())["games"]
    assert (game["id"], game["name"], game["version"]) == (GAME, "My Game", "1.0")
    assert sorted(os.listdir(games)) == [GAME, "catalog.json"]  # no staging left


@pytest.mark.parametrize("provider", ["auto", "libarchive"])
def test_install_gives_the_tree_byte_for_byte(
    packed: tuple[Path, Path, dict], tmp_path: Path, provider: str
) -> None:
    source, games, _ = packed
    mine = tmp_path / "games" / GAME
    mine.mkdir(parents=True)
    for part in (games / GAME).iterdir():
        os.link(part, mine / part.name)  # the same archives, without another GiB on disk
    out = run_cli(
        "install", GAME, "--games-dir", mine.parent, "--state-dir", tmp_path / "state",
        "--provider", provider, check=True, timeout=600,
    )  # fmt: skip
    assert "done with libarchive" in out.stdout
    assert tree(mine / "local") == tree(source)


def test_unrar_declines_the_packed_root_in_one_line(
    packed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    _, games, _ = packed
    out = run_cli(
        "inspect", games / GAME, "--provider", "unrar", timeout=60,
    )  # fmt: skip
    assert out.returncode != 0
    assert out.stderr.count("\n") == 1 and "is not a RAR archive" in out.stderr


def test_stream_install_gives_the_tree_byte_for_byte(
    packed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    source, games, _ = packed
    catalog = games / "catalog.json"
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(games.parent, args=LOOPBACK, games_dir=games, catalog=catalog)
        )
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        sources_of(c, GAME, 1, timeout=60)
        c.ok("stream-install", game_id=GAME, wait=True, timeout=600)
        root = c.games_dir / GAME
        assert sorted(os.listdir(root)) == ["local"]
        assert tree(root / "local") == tree(source)


def _pack_until(
    source: Path, games: Path, sig: int, state: Path
) -> subprocess.CompletedProcess[str]:
    """Run pack, and send ``sig`` once its first 16 MB of archive is on disk."""
    args = [LANSPREAD, "pack", source, "--id", GAME, "--version", "2", "--games-dir", games]
    proc = subprocess.Popen(
        [str(a) for a in args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_clean_env({"LANSPREAD_STATE_DIR": str(state)}),
    )
    staging = pack_staging(games, GAME) / GAME
    while proc.poll() is None:
        if sum(p.stat().st_size for p in staging.glob("*.eti")) > 16_000_000:
            proc.send_signal(sig)
            break
        time.sleep(0.005)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == (-sig if sig == signal.SIGKILL else 130), (
        f"pack ended with {proc.returncode} before it was signalled: {err}"
    )
    return subprocess.CompletedProcess(args, proc.returncode, out, err)


def test_kill_9_leaves_only_staging_which_the_next_run_removes(
    packed: tuple[Path, Path, dict], tmp_path: Path
) -> None:
    source = packed[0]
    games, state = tmp_path / "games", tmp_path / "state"
    games.mkdir()
    _pack_until(source, games, signal.SIGKILL, state)
    staging = pack_staging(games, GAME)
    assert os.listdir(games) == [staging.name]  # no root, no catalog
    # a peer start (recovery) removes it, proven ours by its marker
    recovered = run_cli("recover", "--games-dir", games, "--state-dir", state, check=True)
    assert f"removed {staging.name}, left by an interrupted pack" in recovered.stdout
    assert os.listdir(games) == []
    # killed again, the next pack removes it and finishes
    _pack_until(source, games, signal.SIGKILL, state)
    done = run_cli(
        "pack", source, "--id", GAME, "--version", "2", "--games-dir", games, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"recovered: removed {staging.name}" in done.stderr
    assert sorted(os.listdir(games)) == [GAME, "catalog.json"]
    shutil.rmtree(games)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_kill_leaves_nothing(
    packed: tuple[Path, Path, dict], tmp_path: Path, sig: int
) -> None:
    games = tmp_path / "games"
    games.mkdir()
    result = _pack_until(packed[0], games, sig, tmp_path / "state")
    assert result.returncode == 130
    assert result.stderr.strip() == f"lanspread: pack of {GAME} cancelled; nothing was made"
    assert os.listdir(games) == []
