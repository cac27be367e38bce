"""``lanspread catalog``: init, add, scan, show and remove, each failure one sentence."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from support.cli import invoke

MB = 1_000_000


def make_root(games: Path, folder: str, version: str | None = "1.0", data: bytes = b"x") -> Path:
    root = games / folder
    root.mkdir(parents=True)
    (root / "game.eti").write_bytes(data * 1000)
    if version is not None:
        (root / "version.ini").write_text(f"{version}\n")
    return root


def games_in(catalog: Path) -> dict[str, dict[str, Any]]:
    return {g["id"]: g for g in json.loads(catalog.read_text())["games"]}


@pytest.fixture
def games(tmp_path: Path) -> Path:
    path = tmp_path / "games"
    path.mkdir()
    return path


def test_init_makes_an_empty_catalog_once(games: Path) -> None:
    made = invoke("catalog", "init", "--games-dir", games)
    assert made.returncode == 0, made.stderr
    assert json.loads((games / "catalog.json").read_text()) == {"games": []}
    again = invoke("catalog", "init", "--games-dir", games)
    assert again.returncode == 2
    assert "already exists" in again.stderr and "Traceback" not in again.stderr


def test_add_records_version_size_and_manifest_and_refreshes(games: Path) -> None:
    make_root(games, "quake", "1.08")
    added = invoke("catalog", "add", games / "quake", "--name", "Quake", "--games-dir", games)
    assert added.returncode == 0, added.stderr
    assert "added quake 1.08 (1.0 kB)" in added.stdout
    entry = games_in(games / "catalog.json")["quake"]
    assert entry["name"] == "Quake" and entry["version"] == "1.08" and entry["size"] == 1000
    first_hash = entry["hashes"]["manifest"]
    (games / "quake" / "version.ini").write_text("1.09\n")
    (games / "quake" / "game.eti").write_bytes(b"y" * 2000)
    assert invoke("catalog", "add", games / "quake", "--games-dir", games).returncode == 0
    entry = games_in(games / "catalog.json")["quake"]
    assert entry["name"] == "Quake"  # the name a person gave stays
    assert entry["version"] == "1.09" and entry["hashes"]["manifest"] != first_hash


def test_add_suggests_an_id_and_renames_only_when_told(games: Path) -> None:
    make_root(games, "Half Life")
    refused = invoke("catalog", "add", games / "Half Life", "--games-dir", games)
    assert refused.returncode == 1
    assert "'Half Life' is not a valid game id; add it with --id half-life" in refused.stderr
    assert not (games / "catalog.json").exists()
    done = invoke(
        "catalog", "add", games / "Half Life", "--id", "half-life", "--yes", "--games-dir", games
    )
    assert done.returncode == 0, done.stderr
    assert (games / "half-life").is_dir() and not (games / "Half Life").exists()
    assert games_in(games / "catalog.json")["half-life"]["name"] == "Half Life"


def test_add_without_version_ini_says_what_to_do(games: Path) -> None:
    make_root(games, "quake", version=None)
    result = invoke("catalog", "add", games / "quake", "--games-dir", games)
    assert result.returncode == 1
    assert "has no version.ini" in result.stderr and "lanspread pack" in result.stderr
    assert "1 folder not added" in result.stderr


def test_scan_names_every_folder_it_does_not_add(games: Path) -> None:
    make_root(games, "quake")
    make_root(games, "Half Life", data=b"h")
    make_root(games, "installed-only", version=None)
    (games / ".hidden").mkdir()
    result = invoke("catalog", "scan", games)
    assert result.returncode == 0, result.stderr
    assert "suggested id: half-life" in result.stderr
    assert "installed-only has no version.ini" in result.stderr
    assert "1 added, 0 updated, 0 unchanged, 2 folders to look at" in result.stdout
    assert list(games_in(games / "catalog.json")) == ["quake"]
    again = invoke("catalog", "scan", games, "--rename", "--yes")
    assert again.returncode == 0, again.stderr
    assert "1 added, 0 updated, 1 unchanged, 1 folder to look at" in again.stdout
    assert list(games_in(games / "catalog.json")) == ["half-life", "quake"]


def test_scan_keeps_an_entry_whose_folder_is_gone(games: Path) -> None:
    make_root(games, "quake")
    assert invoke("catalog", "scan", games).returncode == 0
    (games / "quake").rename(games / ".quake-old")
    result = invoke("catalog", "scan", games)
    assert "quake is in the catalog but not in" in result.stderr
    assert "'lanspread catalog remove quake'" in result.stderr
    assert "quake" in games_in(games / "catalog.json")


def test_scan_names_a_suggested_id_that_is_taken(games: Path) -> None:
    make_root(games, "half-life")
    make_root(games, "Half Life", data=b"h")
    result = invoke("catalog", "scan", games, "--rename", "--yes")
    assert "'Half Life' is not a valid game id and 'half-life' is taken" in result.stderr
    assert "--id ANOTHER-ID" in result.stderr
    assert (games / "Half Life").is_dir()
    assert list(games_in(games / "catalog.json")) == ["half-life"]


def test_show_and_remove(games: Path) -> None:
    make_root(games, "quake")
    make_root(games, "doom")
    invoke("catalog", "scan", games)
    shown = invoke("catalog", "show", "--games-dir", games)
    assert "2 games" in shown.stdout and "quake" in shown.stdout and "yes" in shown.stdout
    data = json.loads(invoke("catalog", "show", "--json", "--games-dir", games).stdout)
    assert [g["id"] for g in data["games"]] == ["doom", "quake"]
    removed = invoke("catalog", "remove", "quake", "--games-dir", games)
    assert removed.returncode == 0 and "no file of the game was touched" in removed.stdout
    assert (games / "quake" / "game.eti").is_file()
    assert list(games_in(games / "catalog.json")) == ["doom"]
    missing = invoke("catalog", "remove", "quake", "--games-dir", games)
    assert missing.returncode == 1 and "has no game 'quake'" in missing.stderr


def test_show_without_a_catalog_says_how_to_make_one(games: Path) -> None:
    result = invoke("catalog", "show", "--games-dir", games)
    assert result.returncode == 1
    assert "lanspread catalog scan" in result.stderr and "Traceback" not in result.stderr


def test_a_catalog_with_a_bom_loads_in_show_and_scan(games: Path) -> None:
    (games / "catalog.json").write_bytes(
        b'\xef\xbb\xbf{"games": [{"id": "quake", "name": "Quake", "version": "1.0"}]}'
    )
    shown = invoke("catalog", "show", "--games-dir", games)
    assert shown.returncode == 0, shown.stderr
    assert "Quake" in shown.stdout
    make_root(games, "quake")
    listed = invoke("scan", "--games-dir", games, "--json", "--state-dir", games.parent / "s")
    assert listed.returncode == 0, listed.stderr
    assert json.loads(listed.stdout)[0]["availability"] == "ready"


def test_the_catalog_flag_and_environment_win(games: Path, tmp_path: Path) -> None:
    make_root(games, "quake")
    mine = tmp_path / "mine.json"
    assert invoke("catalog", "scan", games, "--catalog", mine).returncode == 0
    assert "quake" in games_in(mine) and not (games / "catalog.json").exists()
    env_file = tmp_path / "env.json"
    result = invoke("catalog", "scan", games, env={"LANSPREAD_CATALOG": str(env_file)})
    assert result.returncode == 0 and "quake" in games_in(env_file)


def test_a_catalog_with_an_unreadable_entry_is_not_rewritten(games: Path) -> None:
    catalog = games / "catalog.json"
    catalog.write_text('{"games": [{"id": "bad id", "version": "1"}]}')
    make_root(games, "quake")
    result = invoke("catalog", "scan", games)
    assert result.returncode == 1 and "fix that entry by hand" in result.stderr
    assert catalog.read_text() == '{"games": [{"id": "bad id", "version": "1"}]}'


def test_ctrl_c_during_a_scan_keeps_the_games_already_hashed(
    games: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lanspread_core.cli import catalog as catalog_cli

    make_root(games, "alpha")
    make_root(games, "beta")
    real = catalog_cli.entry_for_root

    def interrupted_at_beta(root: Path, gid: str, *args: Any, **kw: Any) -> Any:
        if gid == "beta":
            raise KeyboardInterrupt
        return real(root, gid, *args, **kw)

    monkeypatch.setattr(catalog_cli, "entry_for_root", interrupted_at_beta)
    result = invoke("catalog", "scan", games)
    assert result.returncode == 1 and "Aborted" in result.stderr
    assert list(games_in(games / "catalog.json")) == ["alpha"]


def test_scan_takes_a_linked_folder_and_renames_a_reserved_name(
    games: Path, tmp_path: Path
) -> None:
    elsewhere = make_root(tmp_path / "other-disk", "quake")
    (games / "quake").symlink_to(elsewhere, target_is_directory=True)
    make_root(games, "local", data=b"l")
    result = invoke("catalog", "scan", games)
    assert "'local' is not a valid game id; suggested id: local-game" in result.stderr
    assert list(games_in(games / "catalog.json")) == ["quake"]


def test_local_scan_uses_the_games_dirs_catalog_or_says_how_to_make_one(games: Path) -> None:
    make_root(games, "quake")
    state = games.parent / "state"
    bare = invoke("scan", "--games-dir", games, "--state-dir", state)
    assert "Not in catalog" in bare.stdout
    assert f"no catalog, so no game is shared; 'lanspread catalog scan {games}'" in bare.stderr
    assert invoke("catalog", "scan", games).returncode == 0
    listed = invoke("scan", "--games-dir", games, "--state-dir", state)
    assert "Ready" in listed.stdout and "no catalog" not in listed.stderr


def test_a_big_game_gets_a_line_when_there_is_no_bar(
    games: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lanspread_core.cli import catalog as catalog_cli

    monkeypatch.setattr(catalog_cli, "PLAIN_PROGRESS", 1500)
    make_root(games, "small", data=b"s")  # 1,000 bytes
    make_root(games, "big", data=b"bb")  # 2,000 bytes
    result = invoke("catalog", "scan", games)
    assert "hashing big (2.0 kB)" in result.stderr
    assert "hashing small" not in result.stderr
