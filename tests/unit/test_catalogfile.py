import json
import os
from pathlib import Path

import pytest

from lanspread_core.library.catalog import (
    CatalogError,
    CatalogGame,
    load_catalog,
    parse_catalog,
    valid_game_id,
)
from lanspread_core.library.catalogfile import (
    add_to_catalog,
    entry_for_root,
    remove_from_catalog,
    save_catalog,
    suggest_id,
)
from lanspread_core.library.manifest import build_manifest
from lanspread_core.library.versionini import VersionFileError

HEX = "ab" * 32


@pytest.mark.parametrize(
    ("folder", "slug"),
    [
        ("Half Life", "half-life"),
        ("Half-Life 2: Episode One", "half-life-2-episode-one"),
        ("Café Über", "cafe-uber"),
        ("  --Quake--  ", "quake"),
        ("a..b", "a.b"),
        (".hidden", "hidden"),
        ("日本語", "game"),
        ("local", "local-game"),
        ("x" * 100, "x" * 64),
        ("ok_id-1.2", "ok_id-1.2"),
    ],
)
def test_suggest_id_gives_a_valid_slug(folder: str, slug: str) -> None:
    assert suggest_id(folder) == slug
    assert valid_game_id(slug)


def test_a_catalog_with_a_bom_loads(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"games": [{"id": "quake", "version": "1.09"}]}')
    assert load_catalog(path).games["quake"].version == "1.09"


def test_round_trip_keeps_size_files_and_unknown_fields(tmp_path: Path) -> None:
    data = {
        "note": "party on",
        "games": [
            {
                "id": "ut99",
                "name": "Unreal Tournament",
                "version": "436",
                "size": 1234,
                "comment": "bring a mouse",
                "hashes": {"manifest": HEX, "files": {"System/UT.exe": HEX, "a b/ü.txt": HEX}},
            }
        ],
    }
    catalog = parse_catalog(data)
    game = catalog.games["ut99"]
    assert game.size == 1234
    assert game.hashes == {"manifest": HEX}
    assert game.files == {"System/UT.exe": HEX, "a b/ü.txt": HEX}
    path = tmp_path / "catalog.json"
    save_catalog(path, catalog)
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    assert json.loads(raw) == data
    again = load_catalog(path)
    assert again.games == catalog.games and again.extra == {"note": "party on"}
    save_catalog(path, again)
    assert path.read_bytes() == raw  # stable output


@pytest.mark.parametrize(
    "files",
    [
        {"../evil": HEX},
        {"/etc/passwd": HEX},
        {"a/./b": HEX},
        {"a\\b": HEX},
        {"ok": "not-hex"},
        {"ok": HEX.upper()},
        ["not", "a", "map"],
    ],
)
def test_bad_per_file_hashes_skip_the_entry_with_a_warning(files: object) -> None:
    catalog = parse_catalog(
        {
            "games": [
                {"id": "bad", "version": "1", "hashes": {"files": files}},
                {"id": "good", "version": "1"},
            ]
        }
    )
    assert list(catalog.games) == ["good"]
    assert len(catalog.warnings) == 1 and "'bad'" in catalog.warnings[0]


@pytest.mark.parametrize("size", [-1, True, "12", 1.5])
def test_a_bad_size_skips_the_entry(size: object) -> None:
    catalog = parse_catalog({"games": [{"id": "g", "version": "1", "size": size}]})
    assert not catalog.games and "size" in catalog.warnings[0]


def test_save_is_sorted_and_a_failed_write_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "catalog.json"
    add_to_catalog(path, CatalogGame("zeta", "Zeta", "1"))
    add_to_catalog(path, CatalogGame("alpha", "Alpha", "2"))
    assert [g["id"] for g in json.loads(path.read_text())["games"]] == ["alpha", "zeta"]
    before = path.read_bytes()

    def full_disk(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(CatalogError, match="cannot be written: No space left"):
        add_to_catalog(path, CatalogGame("beta", "Beta", "3"))
    assert path.read_bytes() == before


def test_add_replaces_the_same_id_and_remove_keeps_the_rest(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    add_to_catalog(path, CatalogGame("quake", "Quake", "1.08"))
    add_to_catalog(path, CatalogGame("doom", "Doom", "1.9"))
    catalog = add_to_catalog(path, CatalogGame("quake", "Quake", "1.09"))
    assert catalog.games["quake"].version == "1.09"
    assert load_catalog(path).games["quake"].version == "1.09"
    assert list(remove_from_catalog(path, "quake").games) == ["doom"]
    assert list(load_catalog(path).games) == ["doom"]
    with pytest.raises(CatalogError, match="has no game 'quake'"):
        remove_from_catalog(path, "quake")


def test_a_catalog_with_unreadable_entries_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"games": [{"id": "bad id", "version": "1"}]}')
    before = path.read_bytes()
    with pytest.raises(CatalogError, match="fix that entry by hand"):
        add_to_catalog(path, CatalogGame("quake", "Quake", "1"))
    assert path.read_bytes() == before


def test_entry_for_root_records_version_size_and_manifest(tmp_path: Path) -> None:
    root = tmp_path / "quake"
    (root / "sub").mkdir(parents=True)
    (root / "game.eti").write_bytes(b"x" * 5000)
    (root / "sub" / "extra.bin").write_bytes(b"y" * 10)
    (root / "version.ini").write_text("\ufeffversion = 1.09\n")
    entry = entry_for_root(root, "quake", "Quake")
    manifest = build_manifest(root)
    assert entry == CatalogGame(
        "quake", "Quake", "1.09", {"manifest": manifest.manifest_hash}, size=5010
    )
    assert entry_for_root(root, "quake").name == "quake"


def test_entry_for_root_without_version_ini_says_so(tmp_path: Path) -> None:
    root = tmp_path / "quake"
    root.mkdir()
    with pytest.raises(VersionFileError, match="version.ini cannot be read"):
        entry_for_root(root, "quake")


def test_entry_for_root_refuses_a_bad_id(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="try 'half-life'"):
        entry_for_root(tmp_path, "Half Life")


def test_entry_for_root_refuses_a_reserved_name(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="try 'local-game'"):
        entry_for_root(tmp_path, "local")
