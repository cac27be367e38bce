"""The plugin manager: entry points, broken plugins, duplicates, selection."""

from __future__ import annotations

import json
import tarfile
import types
from pathlib import Path

import pytest

from lanspread_core import ArchiveProvider, ProbeResult, ProviderRecord, hookimpl
from lanspread_core.errors import NoProviderCanHandle, PluginError, ProviderNotFound
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import choose
from support.cli import invoke, run_cli


def _plugin(name: str, *records: ProviderRecord) -> types.SimpleNamespace:
    @hookimpl
    def lanspread_providers() -> list[ProviderRecord]:
        return list(records)

    return types.SimpleNamespace(lanspread_providers=lanspread_providers, __name__=name)


class Never(ArchiveProvider):
    def probe(self, archives):
        return ProbeResult(ok=False, reason="never reads anything")


def test_installed_plugins_are_loaded_through_entry_points() -> None:
    registry = load_registry()
    assert "tarball" in registry.providers
    info = next(p for p in registry.plugins if p.name == "tarball")
    assert info.distribution == "lanspread-tarball"
    assert info.kinds == ["provider"]


def test_duplicate_provider_names_are_rejected() -> None:
    rec = ProviderRecord(name="tarball", factory=Never)
    with pytest.raises(PluginError, match="both register a provider named 'tarball'"):
        load_registry(extra=[("dup", _plugin("dup", rec))])


def test_a_plugin_whose_hook_raises_costs_one_warning() -> None:
    @hookimpl
    def lanspread_providers() -> list[ProviderRecord]:
        raise RuntimeError("boom")

    broken = types.SimpleNamespace(lanspread_providers=lanspread_providers)
    registry = load_registry(extra=[("broken", broken)])
    assert "tarball" in registry.providers
    assert len(registry.warnings) == 1 and "boom" in registry.warnings[0]


def test_a_bad_record_name_is_a_warning_not_a_crash() -> None:
    @hookimpl
    def lanspread_providers() -> list[ProviderRecord]:
        return [ProviderRecord(name="Bad Name!", factory=Never)]

    registry = load_registry(
        extra=[("badname", types.SimpleNamespace(lanspread_providers=lanspread_providers))]
    )
    assert "must be lower-case" in registry.warnings[0]


def test_a_misspelled_hook_fails_at_start() -> None:
    @hookimpl
    def lanspread_provider() -> list[ProviderRecord]:  # missing "s"
        return []

    with pytest.raises(PluginError, match="hook that does not exist"):
        load_registry(
            extra=[("typo", types.SimpleNamespace(lanspread_provider=lanspread_provider))]
        )


def test_unknown_provider_names_installed_ones(tmp_path: Path) -> None:
    registry = load_registry()
    with pytest.raises(ProviderNotFound, match="'nope' is not installed") as err:
        choose(registry, "nope", [tmp_path / "x.eti"])
    assert "tarball" in str(err.value)
    # no package name is made up: lanspread-nope may not exist
    assert "pip install" not in str(err.value) and "'lanspread plugins'" in str(err.value)


def test_auto_gives_every_reason_when_nobody_can(tmp_path: Path) -> None:
    junk = tmp_path / "junk.eti"
    junk.write_bytes(b"this is not an archive" * 10)
    registry = load_registry(
        extra=[("never", _plugin("never", ProviderRecord(name="never", factory=Never)))]
    )
    with pytest.raises(NoProviderCanHandle) as err:
        choose(registry, "auto", [junk])
    assert "never: never reads anything" in str(err.value)
    assert "tarball:" in str(err.value)


def _broken_dist(tmp_path: Path) -> Path:
    """A real installed distribution whose entry point cannot be imported."""
    site = tmp_path / "site"
    info = site / "lanspread_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: lanspread-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[lanspread]\nbroken = lanspread_broken_mod\n")
    (site / "lanspread_broken_mod.py").write_text("raise ImportError('needs libfoo')\n")
    return site


def test_cli_survives_a_broken_entry_point(tmp_path: Path) -> None:
    # a real process: PYTHONPATH counts only when an interpreter starts
    site = _broken_dist(tmp_path)
    proc = run_cli("plugins", "--json", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'broken'" in lines[0] and "needs libfoo" in lines[0]
    data = json.loads(proc.stdout)
    assert "tarball" in data["providers"]
    assert "Traceback" not in proc.stderr


def test_cli_unknown_provider_exits_2_with_one_line(tmp_path: Path) -> None:
    archive = tmp_path / "a.eti"
    archive.write_bytes(b"x")
    proc = invoke("inspect", archive, "--provider", "nope")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "'nope' is not installed" in lines[0] and "pip install" not in lines[0]


def test_provider_env_var_selects(tmp_path: Path) -> None:
    archive = tmp_path / "a.eti"
    archive.write_bytes(b"x")
    proc = invoke("inspect", archive, env={"LANSPREAD_PROVIDER": "nope"})
    assert proc.returncode == 2 and "'nope' is not installed" in proc.stderr


def _tar_game(root: Path) -> Path:
    root.mkdir(parents=True)
    src = root.parent / "src"
    (src / "data" / "maps").mkdir(parents=True)
    (src / "data" / "maps" / "e1m1.bsp").write_bytes(b"\x01" * 5000)
    (src / "readme.txt").write_text("hello\n")
    with tarfile.open(root / "game.eti", "w") as tf:
        tf.add(src / "data", arcname="data")
        tf.add(src / "readme.txt", arcname="readme.txt")
    return root


def test_plugin_guide_example_is_selected_with_provider(tmp_path: Path) -> None:
    root = _tar_game(tmp_path / "quake")
    proc = invoke("inspect", root, "--provider", "tarball", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["provider"] == "tarball" and data["probe"]["ok"]
    paths = {e["path"]: e for e in data["entries"]}
    assert paths["data/maps/e1m1.bsp"]["size"] == 5000
    assert paths["data/maps"]["kind"] == "dir"

    registry = load_registry()
    choice = choose(registry, "tarball", [root / "game.eti"])
    choice.provider.unpack([root / "game.eti"], tmp_path / "out")
    assert (tmp_path / "out" / "data" / "maps" / "e1m1.bsp").read_bytes() == b"\x01" * 5000
    assert (tmp_path / "out" / "readme.txt").read_text() == "hello\n"
