"""Every installed provider against every real RAR fixture, and ``--provider auto``.

For each archive a provider either declines with a reason, or lists exactly
the entries of EXPECTED.json and unpacks to exactly those bytes. ``auto``
must handle every archive correctly: unpack the good ones, refuse the evil one.
"""

from __future__ import annotations

import os
import shutil
import zlib
from pathlib import Path

import pytest

from lanspread_core.archive.listing import Listing, stream_listed
from lanspread_core.archive.protocol import EntryKind
from lanspread_core.archive.treewriter import TreeWriter
from lanspread_core.errors import ArchiveError, UnsafeEntryError
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import build_provider, choose
from support.cli import invoke
from support.data import RAR_FIXTURES, expected_rar
from support.rarcraft import PASSWORD, rar5
from support.trees import tree

EXPECTED = expected_rar()
REGISTRY = load_registry()
PROVIDERS = sorted(REGISTRY.providers)
EVIL = "rar5-evil-symlink-traversal.rar"
GOOD = sorted(n for n in EXPECTED if n != EVIL)


def test_the_shipped_providers_are_installed() -> None:
    assert {"unrar", "libarchive", "fixture", "tarball"} <= set(PROVIDERS)


def _archives(name: str) -> list[Path]:
    return [RAR_FIXTURES / v for v in EXPECTED[name]["volumes"]]


def _check_unpacked(name: str, dest: Path) -> None:
    for exp in EXPECTED[name]["entries"]:
        path = dest / exp["path"]
        if exp["kind"] == "dir":
            assert path.is_dir() and not path.is_symlink(), exp["path"]
        else:
            data = path.read_bytes()
            assert len(data) == exp["size"], exp["path"]
            assert f"{zlib.crc32(data):08x}" == exp["crc32"], exp["path"]
    written = {p.relative_to(dest).as_posix() for p in dest.rglob("*")}
    listed = {e["path"] for e in EXPECTED[name]["entries"]}
    parents = {str(parent) for p in listed for parent in Path(p).parents if str(parent) != "."}
    assert written == listed | parents


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("name", GOOD)
def test_provider_reads_exactly_or_declines(provider: str, name: str, tmp_path: Path) -> None:
    impl = build_provider(REGISTRY, provider)
    archives = _archives(name)
    probe = impl.probe(archives)
    if not probe.ok:
        assert probe.reason, f"{provider} declined {name} without a reason"
        return
    entries = impl.entries(archives)
    assert [(e.path, str(e.kind), e.size) for e in entries] == [
        (e["path"], e["kind"], e["size"]) for e in EXPECTED[name]["entries"]
    ]
    for got, exp in zip(entries, EXPECTED[name]["entries"], strict=True):
        if got.crc32 is not None and got.kind is EntryKind.FILE:
            assert f"{got.crc32:08x}" == exp["crc32"]
    impl.unpack(archives, tmp_path / "out")
    _check_unpacked(name, tmp_path / "out")


@pytest.mark.parametrize("name", GOOD)
def test_auto_handles_every_archive(name: str, tmp_path: Path) -> None:
    choice = choose(REGISTRY, "auto", _archives(name))
    choice.provider.unpack(_archives(name), tmp_path / "out")
    _check_unpacked(name, tmp_path / "out")


class _Collect:
    def __init__(self) -> None:
        self.begun: list[str] = []

    def begin(self, entry) -> None:
        self.begun.append(entry.path)

    def write(self, data) -> None:
        pass

    def end(self, entry) -> None:
        pass


@pytest.mark.parametrize("provider", PROVIDERS)
def test_evil_symlink_writes_nothing_anywhere(provider: str, tmp_path: Path) -> None:
    impl = build_provider(REGISTRY, provider)
    archives = [RAR_FIXTURES / EVIL]
    outer = tmp_path / "outer"
    outer.mkdir()
    target = outer / "local"
    before = tree(tmp_path)
    if impl.probe(archives).ok:
        with pytest.raises(UnsafeEntryError):
            impl.unpack(archives, target)
        sink = _Collect()
        with pytest.raises(UnsafeEntryError):
            stream_listed(impl, archives, sink)
        assert sink.begun == []
        with pytest.raises(UnsafeEntryError):  # a tree writer takes only what was listed
            impl.stream(archives, TreeWriter(outer, Listing(())))
    assert tree(tmp_path) == before
    assert not (tmp_path / "pwned.txt").exists() and not (outer / "pwned.txt").exists()


def _game(games: Path, name: str, data: bytes) -> None:
    root = games / "g"
    root.mkdir(parents=True)
    (root / "g.eti").write_bytes(data)
    (root / "version.ini").write_text("1.0\n")


BAD = {
    "truncated": (RAR_FIXTURES / "rar5-subdirs.rar").read_bytes()[:300],
    "not-an-archive": b"MZ\x90\x00 this is a program, not an archive " * 50,
    "password": rar5([("secret.txt", b"top secret\n" * 20)], password=PASSWORD),
    "password-headers": rar5([("s.txt", b"x" * 64)], password=PASSWORD, encrypt_headers=True),
}


@pytest.mark.parametrize("provider", ["auto", *PROVIDERS])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_archives_give_one_line_and_no_output(provider: str, case: str, tmp_path: Path):
    games = tmp_path / "games"
    _game(games, "g", BAD[case])
    before = tree(games)
    proc = invoke(
        "install", "g", "--games-dir", games, "--state-dir", tmp_path / "st", "--provider", provider
    )
    assert proc.returncode == 1, proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert tree(games) == before


def test_password_reason_is_named(tmp_path: Path) -> None:
    games = tmp_path / "games"
    _game(games, "g", BAD["password"])
    proc = invoke("install", "g", "--games-dir", games, "--state-dir", tmp_path / "st")
    assert "password-protected" in proc.stderr


@pytest.mark.needs("libarchive")
def test_corrupt_byte_is_caught_by_every_provider_that_reads_it(tmp_path: Path) -> None:
    """A flipped byte inside stored data: the header CRC catches what the reader misses."""
    src = RAR_FIXTURES / "rar5-crc.rar"
    data = bytearray(src.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.eti"
    bad.write_bytes(bytes(data))
    for provider in ("unrar", "libarchive"):
        impl = build_provider(REGISTRY, provider)
        dest = tmp_path / provider
        if impl.probe([bad]).ok:
            with pytest.raises(ArchiveError):
                impl.unpack([bad], dest)
        assert not dest.exists()


@pytest.mark.needs("libarchive")
def test_install_of_a_rar_fixture_game_through_the_cli(tmp_path: Path) -> None:
    games = tmp_path / "games"
    root = games / "vols"
    root.mkdir(parents=True)
    for vol in EXPECTED["rar5-vols.part1.rar"]["volumes"]:
        shutil.copy(RAR_FIXTURES / vol, root / vol.replace(".rar", ".eti"))
    (root / "version.ini").write_text("1\n")
    for provider in ("unrar", "libarchive"):
        proc = invoke(
            "install",
            "vols",
            "--games-dir",
            games,
            "--state-dir",
            tmp_path / "st",
            "--provider",
            provider,
        )
        assert proc.returncode == 0, proc.stderr
        _check_unpacked("rar5-vols.part1.rar", root / "local")
        assert (
            invoke(
                "uninstall", "vols", "--games-dir", games, "--state-dir", tmp_path / "st"
            ).returncode
            == 0
        )
    assert not os.path.exists(root / "local")
