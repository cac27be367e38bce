"""Sharing your own games end to end: ``catalog scan``, then real peers serve and download.

Real ``lanspread`` processes throughout: the scan a user runs, peers that find
the catalog in their games dir, and a peer started with nothing but
``lanspread.toml``.
"""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
from contextlib import ExitStack
from pathlib import Path

from support.cli import LANSPREAD, run_cli
from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import digest_tree

MB = 1_000_000


def _at_terminal(*args: str | Path, answer: str) -> subprocess.CompletedProcess[str]:
    """``lanspread ARGS`` with a terminal on stdin, where a person types ``answer``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    keyboard, terminal = pty.openpty()
    try:
        proc = subprocess.Popen(
            [str(LANSPREAD), *map(str, args)],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        os.write(keyboard, answer.encode())
        out, err = proc.communicate(timeout=120)
    finally:
        os.close(keyboard)
        os.close(terminal)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_a_folder_named_half_life_is_suggested_an_id_and_once_accepted_downloads(
    tmp_path: Path, game_sets: GameSets
) -> None:
    games = tmp_path / "a" / "games"
    game_sets.create(games, "alpha", size=6 * MB)
    (games / "aurora").rename(games / "Half Life")
    catalog = games / "catalog.json"

    first = run_cli("catalog", "scan", games)
    assert first.returncode == 0, first.stderr
    assert "'Half Life' is not a valid game id; suggested id: half-life." in first.stderr
    assert "--rename" in first.stderr
    assert [g["id"] for g in json.loads(catalog.read_text())["games"]] == ["borealis"]
    assert (games / "Half Life").is_dir()  # nothing renamed without asking

    script = run_cli("catalog", "scan", games, "--rename")  # no terminal to ask at
    assert "add --yes to rename without asking" in script.stderr
    declined = _at_terminal("catalog", "scan", games, "--rename", answer="n\n")
    assert "rename this folder? [y/N]" in declined.stderr
    assert "no folder renamed" in declined.stderr
    assert (games / "Half Life").is_dir() and not (games / "half-life").exists()

    accepted = _at_terminal("catalog", "scan", games, "--rename", answer="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert "added half-life 1.0" in accepted.stdout
    assert (games / "half-life" / "version.ini").is_file()
    entry = {g["id"]: g for g in json.loads(catalog.read_text())["games"]}["half-life"]
    assert entry["name"] == "Half Life" and entry["version"] == "1.0"
    assert entry["size"] > 6 * MB * 0.9 and len(entry["hashes"]["manifest"]) == 64

    # the second peer has only the catalog; neither peer is told where it is
    (tmp_path / "b" / "games").mkdir(parents=True)
    shutil.copy(catalog, tmp_path / "b" / "games" / "catalog.json")
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", args=LOOPBACK))
        ready = {g["id"]: g for g in a.ok("list-games")["games"]}
        assert ready["half-life"]["availability"] == "ready"
        assert ready["half-life"]["manifest_hash"] == entry["hashes"]["manifest"]
        b = stack.enter_context(PeerProc(tmp_path / "b", args=[*LOOPBACK, "--peer", a.control]))
        sources_of(b, "half-life", 1)
        result = b.ok("download", game_id="half-life", wait=True, timeout=120)
        assert set(result["peers"]) == {a.peer_id}
        got = b.games_dir / "half-life"
        assert digest_tree(got) == digest_tree(games / "half-life")
        assert (got / "version.ini").read_text().strip() == "1.0"


def _settings(tmp_path: Path, games: Path) -> dict[str, str]:
    toml = tmp_path / "lanspread.toml"
    toml.write_text(f'games_dir = "{games}"\nname = "alice"\nport = 0\n')
    # the state dir is no setting: the environment keeps the test's own
    return {"LANSPREAD_CONFIG": str(toml), "LANSPREAD_STATE_DIR": str(tmp_path / "state")}


def test_a_peer_with_only_lanspread_toml_serves_its_games(
    tmp_path: Path, game_sets: GameSets
) -> None:
    games = tmp_path / "a" / "games"
    ids = game_sets.create(games, "alpha", size=2 * MB, catalog=games / "catalog.json")
    env = _settings(tmp_path / "a", games)
    with ExitStack() as stack:
        a = stack.enter_context(PeerProc(tmp_path / "a", bare=True, env=env))
        assert a.ready["name"] == "alice"
        assert Path(a.ready["games_dir"]) == games.resolve()
        listed = {g["id"]: g["availability"] for g in a.ok("list-games")["games"]}
        assert listed == {gid: "ready" for gid in ids}
        port = a.control.rpartition(":")[2]
        (tmp_path / "b" / "games").mkdir(parents=True)
        shutil.copy(games / "catalog.json", tmp_path / "b" / "games")
        b = stack.enter_context(
            PeerProc(tmp_path / "b", args=[*LOOPBACK, "--peer", f"127.0.0.1:{port}"])
        )
        sources_of(b, ids[0], 1)
        names = {p["peer_id"]: p["name"] for p in b.ok("peers")["peers"]}
        assert names[a.peer_id] == "alice"


def test_run_without_a_catalog_says_how_to_get_one(tmp_path: Path) -> None:
    games = tmp_path / "games"
    games.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")},
        **_settings(tmp_path, games),
    }
    proc = subprocess.Popen(
        [str(LANSPREAD), "run", "--discovery", "static"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("Friends can add you"):
                break
        run_cli("stop", env={"LANSPREAD_STATE_DIR": env["LANSPREAD_STATE_DIR"]}, check=True)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "no catalog, so no game is shared" in err
    assert f"lanspread catalog scan {games.resolve()}" in err
    assert "lanspread run --party KEY" in err
