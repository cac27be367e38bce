"""``lanspread catalog add --files`` records per-file hashes, and ``install`` holds to them.

The hashes are computed by streaming the archives through a provider, and
must equal the BLAKE3 of every file a real install writes. A catalog whose
hash of one file differs makes ``lanspread install`` fail in one line naming
that file, with nothing left in ``local/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import blake3

from lanspread_fixture.gamesets import create_set
from support.cli import invoke

GAME = "aurora"


def hashes_on_disk(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): blake3.blake3(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_catalog_add_files_records_what_install_then_checks(tmp_path: Path) -> None:
    games, catalog, state = tmp_path / "games", tmp_path / "catalog.json", tmp_path / "state"
    create_set(games, "alpha", size=2 << 20)
    added = invoke(
        "catalog", "add", games / GAME, "--files", "--catalog", catalog, "--games-dir", games
    )
    assert added.returncode == 0, added.stderr
    entry = next(g for g in json.loads(catalog.read_text())["games"] if g["id"] == GAME)
    files = entry["hashes"]["files"]
    assert len(files) >= 3 and entry["hashes"]["manifest"]
    assert not (games / GAME / "local").exists()  # hashed by streaming, nothing extracted

    where = ["--games-dir", games, "--catalog", catalog, "--state-dir", state]
    installed = invoke("install", GAME, *where)
    assert installed.returncode == 0, installed.stderr
    assert hashes_on_disk(games / GAME / "local") == files
    assert invoke("uninstall", GAME, "--yes", *where).returncode == 0

    victim = sorted(files)[0]
    entry["hashes"]["files"][victim] = "0" * 64
    catalog.write_text(json.dumps({"games": [entry]}))
    refused = invoke("install", GAME, *where)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1, refused.stderr
    assert f"{victim!r} in the download of {GAME} has BLAKE3" in lines[0], lines
    assert not (games / GAME / "local").exists()
    assert sorted(p.name for p in (games / GAME).iterdir() if p.name.startswith(".")) == []


def test_catalog_add_files_without_a_provider_for_the_archives_says_so(tmp_path: Path) -> None:
    games, catalog = tmp_path / "games", tmp_path / "catalog.json"
    create_set(games, "alpha", size=1 << 20, fmt="fixture")
    added = invoke(
        "catalog",
        "add",
        games / GAME,
        "--files",
        "--provider",
        "unrar",
        "--catalog",
        catalog,
        "--games-dir",
        games,
    )
    assert added.returncode != 0
    assert f"cannot hash the files of {games / GAME}: " in added.stderr, added.stderr
    assert not catalog.exists() or GAME not in catalog.read_text()


def test_catalog_scan_files_records_hashes_also_for_games_listed_without_them(
    tmp_path: Path,
) -> None:
    games, catalog = tmp_path / "games", tmp_path / "catalog.json"
    create_set(games, "alpha", size=1 << 20)
    first = invoke("catalog", "scan", games, "--catalog", catalog)
    assert first.returncode == 0, first.stderr
    assert '"files"' not in catalog.read_text()
    hashed = invoke("catalog", "scan", games, "--files", "--catalog", catalog)
    assert hashed.returncode == 0, hashed.stderr
    assert f"updated {GAME}: the hashes of its " in hashed.stdout, hashed.stdout
    entry = next(g for g in json.loads(catalog.read_text())["games"] if g["id"] == GAME)
    where = ["--games-dir", games, "--catalog", catalog, "--state-dir", tmp_path / "state"]
    installed = invoke("install", GAME, *where)
    assert installed.returncode == 0, installed.stderr
    assert entry["hashes"]["files"] == hashes_on_disk(games / GAME / "local")
    again = invoke("catalog", "scan", games, "--files", "--catalog", catalog)
    assert again.returncode == 0 and "2 unchanged" in again.stdout, again.stdout
