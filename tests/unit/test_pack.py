"""Packing: the plan (walk, refusals, split, names), the zip packer against the
real libarchive provider, the staging job, the packer hook and the command."""

from __future__ import annotations

import json
import os
import socket
import types
import zipfile
from pathlib import Path

import pytest

from lanspread_core import ArchiveError, EntryKind, PackerRecord, PackItem, hookimpl
from lanspread_core.archive.listing import check_entries
from lanspread_core.archive.treewriter import unpack_via_stream
from lanspread_core.archive.zippacker import ZipPacker
from lanspread_core.errors import Cancelled, NoProviderCanHandle, PluginError
from lanspread_core.install.packing import PackJob, RootExists, sweep_pack_staging
from lanspread_core.install.packplan import PackRefused, archive_names, plan_pack, split
from lanspread_core.library.layout import OWNED_MARKER, pack_staging
from lanspread_core.plugin.registry import load_registry
from support.cli import invoke
from support.needs import require
from support.trees import tree

require("libarchive")

from lanspread_libarchive.provider import LibarchiveProvider  # noqa: E402


def _item(path: str, size: int) -> PackItem:
    return PackItem(path, EntryKind.FILE, size, Path("/nonexistent") / path)


def _game_tree(top: Path) -> Path:
    """Nested folders, empty files, an empty folder, unicode names, some bytes."""
    (top / "Données" / "niveau 1").mkdir(parents=True)
    (top / "empty" / "deeper").mkdir(parents=True)
    (top / "Données" / "niveau 1" / "carte.bsp").write_bytes(os.urandom(300_000))
    (top / "Données" / "vide.cfg").write_bytes(b"")
    (top / "ゲーム.exe").write_bytes(b"MZ" + os.urandom(70_000))
    (top / "readme.txt").write_text("hello\n" * 1000)
    (top / "zero").write_bytes(b"")
    return top


def _unpacked(archives: list[Path], dest: Path) -> dict[str, str]:
    provider = LibarchiveProvider()
    assert provider.probe(archives).ok
    unpack_via_stream(provider, archives, dest, listing=check_entries(provider.entries(archives)))
    return tree(dest)


# ------------------------------------------------------------------ the plan


def test_split_cuts_between_files_and_a_big_file_gets_its_own_volume() -> None:
    items = [_item("a", 40), _item("b", 40), _item("c", 250), _item("d", 10), _item("e", 0)]
    volumes = split(items, 100)
    assert [[i.path for i in v] for v in volumes] == [["a", "b"], ["c"], ["d", "e"]]
    # nothing lost, nothing reordered
    assert [i for v in volumes for i in v] == items


def test_split_keeps_everything_in_one_volume_under_the_size() -> None:
    items = [_item("a", 1), _item("b", 0), _item("c", 1)]
    assert split(items, 10) == [items]


def test_archive_names_sort_in_unpack_order() -> None:
    assert archive_names("quake", 1) == ["quake.eti"]
    names = archive_names("quake", 12)
    assert names[0] == "quake.part001.eti" and names[-1] == "quake.part012.eti"
    many = archive_names("q", 1200)
    assert sorted(many) == many and many[0] == "q.part0001.eti"


def test_plan_lists_files_and_only_empty_folders_in_path_order(tmp_path: Path) -> None:
    plan = plan_pack(_game_tree(tmp_path / "src"))
    assert [(i.path, i.kind, i.size) for i in plan.items] == [
        ("Données/niveau 1/carte.bsp", EntryKind.FILE, 300_000),
        ("Données/vide.cfg", EntryKind.FILE, 0),
        ("empty/deeper", EntryKind.DIR, 0),
        ("readme.txt", EntryKind.FILE, 6000),
        ("zero", EntryKind.FILE, 0),
        ("ゲーム.exe", EntryKind.FILE, 70_002),
    ]
    assert plan.files == 5 and plan.total == 376_002
    assert plan.needed > plan.total


def test_plan_refuses_symlinks_naming_them(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    (src / "Données" / "link.dll").symlink_to("/etc/passwd")
    (src / "dirlink").symlink_to(src / "empty")
    with pytest.raises(PackRefused, match=r"2 symbolic link.*'Données/link.dll', 'dirlink'"):
        plan_pack(src)


def test_plan_refuses_sockets_and_pipes(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    os.mkfifo(src / "pipe")
    with pytest.raises(PackRefused, match="neither files nor folders.*'pipe'"):
        plan_pack(src)
    (src / "pipe").unlink()
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.bind(str(src / "sock"))
        with pytest.raises(PackRefused, match="'sock'"):
            plan_pack(src)
    finally:
        sock.close()


def test_plan_refuses_names_a_provider_would_read_back_otherwise(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a\\b.txt").write_bytes(b"x")
    with pytest.raises(PackRefused, match="backslash"):
        plan_pack(src)
    (src / "a\\b.txt").unlink()
    (Path(os.fsdecode(bytes(src) + b"/caf\xe9.txt"))).write_bytes(b"x")
    with pytest.raises(PackRefused, match="not valid UTF-8"):
        plan_pack(src)


def test_plan_refuses_a_folder_without_files(tmp_path: Path) -> None:
    (tmp_path / "src" / "only" / "folders").mkdir(parents=True)
    with pytest.raises(PackRefused, match="holds no files"):
        plan_pack(tmp_path / "src")


# ------------------------------------------------------------------ the zip packer


def test_zip_volumes_each_read_alone_and_together_give_the_tree(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    plan = plan_pack(src, split_size=50_000)
    assert len(plan.volumes) == 3
    archives = []
    for name, items in zip(archive_names("g", 3), plan.volumes, strict=True):
        archives.append(tmp_path / name)
        ZipPacker().write(items, archives[-1], lambda n: None)
    provider = LibarchiveProvider()
    for archive, items in zip(archives, plan.volumes, strict=True):
        listed = [(e.path, e.kind, e.size) for e in provider.entries([archive])]
        assert listed == [(i.path, i.kind, i.size) for i in items]
    for archive in archives:  # stored: nothing compressed, every CRC32 recorded
        with zipfile.ZipFile(archive) as zf:
            assert {i.compress_type for i in zf.infolist()} == {zipfile.ZIP_STORED}
    assert _unpacked(archives, tmp_path / "out") == tree(src)


def test_zip_progress_counts_every_byte_and_cancels(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    plan = plan_pack(src)
    seen: list[int] = []
    ZipPacker().write(plan.items, tmp_path / "a.eti", seen.append)
    assert sum(seen) == plan.total

    def cancel(n: int) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled):
        ZipPacker().write(plan.items, tmp_path / "b.eti", cancel)


def test_zip_refuses_a_file_that_changed_while_packing(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    plan = plan_pack(src)
    (src / "readme.txt").write_text("longer now\n" * 1000)
    with pytest.raises(ArchiveError, match="readme.txt changed while it was being packed"):
        ZipPacker().write(plan.items, tmp_path / "a.eti", lambda n: None)


# ------------------------------------------------------------------ the staging job


def test_job_builds_in_staging_and_promotes_last(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    plan = plan_pack(src, split_size=200_000)
    with PackJob(games, "g") as job:
        assert (pack_staging(games, "g") / OWNED_MARKER).is_file()
        job.write(plan, ZipPacker(), lambda n: None)
        assert job.verify(plan, load_registry()) == "libarchive"
        job.seal("1.2")
        assert not (games / "g").exists()
        root = job.promote()
    assert sorted(os.listdir(games)) == ["g"]
    assert sorted(os.listdir(root)) == ["g.part001.eti", "g.part002.eti", "version.ini"]
    assert (root / "version.ini").read_text() == "version = 1.2\n"


def test_an_error_or_ctrl_c_in_the_job_leaves_nothing(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    plan = plan_pack(src)
    for error in (ArchiveError("boom"), KeyboardInterrupt()):
        with pytest.raises(type(error)), PackJob(games, "g") as job:
            job.write(plan, ZipPacker(), lambda n: None)
            raise error
        assert os.listdir(games) == []


def test_job_never_replaces_a_game_folder(tmp_path: Path) -> None:
    games = tmp_path / "games"
    (games / "g" / "local").mkdir(parents=True)
    with pytest.raises(RootExists, match="never replaces"), PackJob(games, "g"):
        pass
    assert sorted(os.listdir(games)) == ["g"] and os.listdir(games / "g") == ["local"]


def test_sweep_removes_only_unlocked_staging_with_our_marker(tmp_path: Path) -> None:
    games = tmp_path / "games"
    games.mkdir()
    left = pack_staging(games, "dead")
    (left / "dead").mkdir(parents=True)
    (left / OWNED_MARKER).write_text("lanspread pack (pid 1)")
    stranger = pack_staging(games, "theirs")
    stranger.mkdir()  # no marker: not proven ours
    with PackJob(games, "live") as job:  # the next pack sweeps first
        assert job.swept == [f"removed {left.name}, left by an interrupted pack"]
        assert sweep_pack_staging(games) == []  # a running pack holds its lock
        assert job.staging.is_dir()
    assert sorted(os.listdir(games)) == [stranger.name]


def test_verify_refuses_what_no_provider_reads_or_reads_otherwise(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    plan = plan_pack(src)

    class Garbage:
        def write(self, items, target, progress) -> None:
            target.write_bytes(b"not an archive at all" * 10)

    class Forgetful:
        def write(self, items, target, progress) -> None:
            ZipPacker().write(items[:-1], target, progress)

    with PackJob(games, "g") as job:
        job.write(plan, Garbage(), lambda n: None)
        with pytest.raises(NoProviderCanHandle, match="no installed provider reads"):
            job.verify(plan, load_registry())
    with PackJob(games, "h") as job:
        job.write(plan, Forgetful(), lambda n: None)
        with pytest.raises(ArchiveError, match="reads 'the end' where .* 'ゲーム.exe'"):
            job.verify(plan, load_registry())
    assert os.listdir(games) == []


# ------------------------------------------------------------------ the hook


def test_the_builtin_packer_is_registered_through_an_entry_point() -> None:
    registry = load_registry()
    assert registry.packers["zip"].format == "zip (stored)"
    assert registry.owners["packer:zip"] == "packers"
    assert next(p for p in registry.plugins if p.name == "packers").kinds == ["packer"]


def test_a_plugin_packer_is_loaded_and_duplicates_are_refused() -> None:
    def plugin(name: str) -> types.SimpleNamespace:
        @hookimpl
        def lanspread_packers() -> list[PackerRecord]:
            return [PackerRecord(name=name, factory=ZipPacker, format="zip again")]

        return types.SimpleNamespace(lanspread_packers=lanspread_packers)

    registry = load_registry(extra=[("mine", plugin("zip2"))])
    assert registry.owners["packer:zip2"] == "mine"
    with pytest.raises(PluginError, match="both register a packer named 'zip'"):
        load_registry(extra=[("dup", plugin("zip"))])


def test_plugins_command_lists_packers() -> None:
    result = invoke("plugins", "--json")
    assert result.returncode == 0
    packers = json.loads(result.stdout)["packers"]
    assert packers["zip"] == {
        "plugin": "packers",
        "description": packers["zip"]["description"],
        "format": "zip (stored)",
    }
    assert "zip          writes zip (stored)" in invoke("plugins").stdout


# ------------------------------------------------------------------ the command


def test_pack_command_makes_a_root_and_a_catalog_entry(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "My Game"), tmp_path / "games"
    games.mkdir()
    args = ("pack", src, "--id", "my-game", "--version", "2.0", "--games-dir", games)
    result = invoke(*args, "--split-size", "0.2MB", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["archives"] == ["my-game.part001.eti", "my-game.part002.eti"]
    assert out["provider"] == "libarchive" and out["files"] == 5
    catalog = json.loads((games / "catalog.json").read_text())
    (game,) = catalog["games"]
    assert (game["id"], game["name"], game["version"]) == ("my-game", "My Game", "2.0")
    assert len(game["hashes"]["manifest"]) == 64
    again = invoke(*args)
    assert again.returncode == 2 and "already exists" in again.stderr
    assert sorted(os.listdir(games)) == ["catalog.json", "my-game"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (("--id", "Half Life"), "try --id half-life"),
        (("--id", "ok", "--split-size", "lots"), "'lots' is not a size"),
        (("--id", "ok", "--packer", "zpi"), "packer 'zpi' is not installed; did you mean zip?"),
        (("--id", "ok", "--version", " "), "' ' is not a version"),
    ],
)
def test_pack_command_refuses_bad_input_in_one_line(tmp_path: Path, extra, message) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    result = invoke("pack", src, "--version", "1", "--games-dir", games, *extra)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert os.listdir(games) == []


def test_pack_command_refuses_a_symlink_and_leaves_nothing(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    (src / "shortcut").symlink_to(src / "readme.txt")
    result = invoke("pack", src, "--id", "g", "--version", "1", "--games-dir", games)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"lanspread: {src} holds 1 symbolic link(s), which pack does not store: 'shortcut';"
        " replace each with a copy of what it points to, or remove it"
    ]
    assert os.listdir(games) == []


def test_pack_command_refuses_a_source_holding_the_games_dir(tmp_path: Path) -> None:
    src = _game_tree(tmp_path / "src")
    (src / "games").mkdir()
    result = invoke("pack", src, "--id", "g", "--version", "1", "--games-dir", src / "games")
    assert result.returncode == 2 and "holds the games directory" in result.stderr


def test_pack_command_checks_free_space_first(tmp_path: Path, monkeypatch) -> None:
    import shutil as real_shutil

    from lanspread_core.system import diskspace

    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    usage = real_shutil.disk_usage(games)
    monkeypatch.setattr(diskspace.shutil, "disk_usage", lambda path: usage._replace(free=1_000_000))
    result = invoke("pack", src, "--id", "g", "--version", "1", "--games-dir", games)
    assert result.returncode == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("lanspread: not enough disk space to pack g: it needs")
    assert os.listdir(games) == []


def test_pack_command_refuses_a_catalog_it_would_damage_before_packing(tmp_path: Path) -> None:
    src, games = _game_tree(tmp_path / "src"), tmp_path / "games"
    games.mkdir()
    catalog = games / "catalog.json"
    catalog.write_text(json.dumps({"games": [{"id": "bad id!", "version": "1"}]}))
    result = invoke("pack", src, "--id", "g", "--version", "1", "--games-dir", games)
    assert result.returncode == 1
    assert "fix that entry by hand" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(games)) == ["catalog.json"]


def test_a_second_pack_of_the_same_id_is_refused_while_the_first_runs(tmp_path: Path) -> None:
    from lanspread_core.errors import UsageError

    games = tmp_path / "games"
    games.mkdir()
    with PackJob(games, "g") as first:
        with pytest.raises(UsageError, match="in use by another 'lanspread pack' of g"):
            PackJob(games, "g").__enter__()
        assert (first.staging / OWNED_MARKER).is_file()  # the second one took nothing away
    assert os.listdir(games) == []
