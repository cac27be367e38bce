"""The libarchive provider against real RAR archives, made-up zips and tars, and the CLI.

Each fixture either reads exactly as the official unrar library lists it, or is
declined at probe time with a reason, never half-installed.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import shutil
import sys
import tarfile
import zipfile
import zlib
from pathlib import Path

import pytest

from lanspread_core import ArchiveError, Cancelled, Entry, EntryKind, UnsafeEntryError
from lanspread_core.archive.listing import stream_listed
from support.cli import CliResult, invoke
from support.data import RAR_FIXTURES, ROOT
from support.needs import require

require("libarchive")  # the provider's module loads the system library

from lanspread_libarchive.plugin import lanspread_providers  # noqa: E402
from lanspread_libarchive.provider import LibarchiveProvider  # noqa: E402

RAR = RAR_FIXTURES
EXPECTED: dict = json.loads((RAR / "EXPECTED.json").read_text())
PLUGIN_DIR = ROOT / "plugins" / "libarchive_provider"


@pytest.fixture
def provider() -> LibarchiveProvider:
    return LibarchiveProvider()


class Recorder:
    """A sink that keeps what it is given, and can be told to cancel."""

    def __init__(self, cancel_on_write: bool = False) -> None:
        self.calls: list[tuple[str, str]] = []
        self.data: dict[str, bytes] = {}
        self.cancel_on_write = cancel_on_write
        self._current: str | None = None

    def begin(self, entry: Entry) -> None:
        self.calls.append(("begin", entry.path))
        self._current = entry.path
        self.data[entry.path] = b""

    def write(self, data: bytes | memoryview) -> None:
        if self.cancel_on_write:
            raise Cancelled("cancelled by the test")
        assert self._current is not None
        self.data[self._current] += bytes(data)

    def end(self, entry: Entry) -> None:
        self.calls.append(("end", entry.path))
        self._current = None


def readable(name: str) -> bool:
    return EXPECTED[name]["libarchive_3_6_2_one_file_reader"] == "yes"


def crc_of(path: Path) -> int:
    return zlib.crc32(path.read_bytes())


def listing(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*"))


# --- the RAR fixtures ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_rar_fixture_reads_as_unrar_lists_it_or_is_declined(name, provider, tmp_path):
    spec = EXPECTED[name]
    probe = provider.probe([RAR / name])
    assert probe.format in ("rar3", "rar5")
    assert probe.solid == spec["solid"]
    assert probe.multi_volume == spec["multi_volume"]
    assert list(probe.volumes) == spec["volumes"]
    if not probe.ok:
        # Declined only where libarchive really cannot read it: solid RAR3.
        assert not readable(name)
        assert probe.reason.startswith(name)
        assert "solid RAR3" in probe.reason and "lanspread-unrar" in probe.reason
        with pytest.raises(ArchiveError, match="solid RAR3"):
            provider.unpack([RAR / name], tmp_path / "out")
        assert not (tmp_path / "out").exists()
        return

    entries = provider.entries([RAR / name])
    assert [(e.path, str(e.kind), e.size) for e in entries] == [
        (x["path"], x["kind"], x["size"]) for x in spec["entries"]
    ]
    for entry, want in zip(entries, spec["entries"], strict=True):
        if entry.kind is EntryKind.FILE and entry.crc32 is not None:
            assert entry.crc32 == int(want["crc32"], 16)
        if entry.kind is not EntryKind.FILE:
            assert entry.crc32 is None
    if name == "rar5-blake.rar":  # BLAKE2 archives carry no CRC32
        assert all(e.crc32 is None for e in entries)

    dest = tmp_path / "out"
    if any(e.kind not in (EntryKind.FILE, EntryKind.DIR) for e in entries):
        return  # the symlink fixture: see test_symlink_traversal_is_refused
    provider.unpack([RAR / name], dest)
    for want in spec["entries"]:
        target = dest / want["path"]
        if want["kind"] == "dir":
            assert target.is_dir() and not target.is_symlink()
        else:
            assert target.stat().st_size == want["size"]
            assert crc_of(target) == int(want["crc32"], 16)
    files = sorted(p.relative_to(dest).as_posix() for p in dest.rglob("*") if p.is_file())
    assert files == sorted(x["path"] for x in spec["entries"] if x["kind"] == "file")


def test_multi_volume_sets_are_read_through_all_volumes(provider, tmp_path):
    """libarchive 3.6.2 reads RAR3 and RAR5 volume sets when opened on every volume."""
    for first in ("rar3-vols.part1.rar", "rar5-vols.part1.rar"):
        dest = tmp_path / first
        provider.unpack([RAR / first], dest)
        assert crc_of(dest / "vols" / "bigfile.txt") == 0x509AD74C
        assert crc_of(dest / "vols" / "smallfile.txt") == 0xD08A1F86


def test_game_root_with_volumes_named_eti(provider, tmp_path):
    root = tmp_path / "game"
    root.mkdir()
    for i in (1, 2, 3):
        shutil.copy(RAR / f"rar5-vols.part{i}.rar", root / f"game.part{i}.eti")
    shutil.copy(RAR / "rar3-subdirs.rar", root / "base.eti")
    archives = sorted(root.glob("*.eti"))
    probe = provider.probe(archives)
    assert probe.ok, probe.reason
    assert probe.format == "rar3, rar5"
    assert probe.multi_volume
    assert list(probe.volumes) == [p.name for p in archives]
    entries = provider.entries(archives)
    assert [e.path for e in entries][-2:] == ["vols/bigfile.txt", "vols/smallfile.txt"]
    assert len(entries) == 12  # the split file is listed once
    provider.unpack(archives, root / "local")
    assert crc_of(root / "local" / "vols" / "bigfile.txt") == 0x509AD74C
    assert (root / "local" / "sub" / "empty").is_dir()


def test_later_volume_alone_or_missing_volume_is_declined(provider, tmp_path):
    probe = provider.probe([RAR / "rar5-vols.part2.rar"])
    assert not probe.ok
    assert "later volume" in probe.reason and "rar5-vols.part2.rar" in probe.reason

    for i in (1, 2):
        shutil.copy(RAR / f"rar3-vols.part{i}.rar", tmp_path / f"g.part{i}.eti")
    probe = provider.probe([tmp_path / "g.part1.eti"])
    assert not probe.ok
    assert probe.reason == "volume g.part3.eti of g.part1.eti is missing"
    with pytest.raises(ArchiveError, match="g.part3.eti"):
        provider.entries([tmp_path / "g.part1.eti"])


def test_symlink_traversal_is_refused_and_nothing_is_written(provider, tmp_path):
    archive = [RAR / "rar5-evil-symlink-traversal.rar"]
    kinds = [(e.path, e.kind) for e in provider.entries(archive)]
    assert kinds == [("up", EntryKind.SYMLINK), ("up/pwned.txt", EntryKind.FILE)]
    before = listing(tmp_path)
    with pytest.raises(UnsafeEntryError, match="symlink"):
        provider.unpack(archive, tmp_path / "out")
    assert listing(tmp_path) == before

    sink = Recorder()
    with pytest.raises(UnsafeEntryError):
        stream_listed(provider, archive, sink)
    assert sink.calls == []


# --- made-up zip and tar archives -----------------------------------------------


def make_zip(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("data/", "")
        zf.writestr("data/maps/e1m1.bsp", b"\x00\x01" * 40_000)
        zf.writestr("empty.cfg", b"")
        zf.writestr("readme.txt", "hello lan\n" * 50)
    return path


def make_tar(path: Path, src: Path, mode: str = "w:gz") -> Path:
    (src / "data" / "maps").mkdir(parents=True)
    (src / "data" / "maps" / "e1m1.bsp").write_bytes(os.urandom(70_000))
    (src / "empty.cfg").write_bytes(b"")
    (src / "readme.txt").write_text("hello lan\n" * 50)
    with tarfile.open(path, mode) as tf:
        tf.add(src, arcname=".")  # the "./" root entry must not trip the path rules
    return path


def test_zip_named_eti_unpacks(provider, tmp_path):
    archive = make_zip(tmp_path / "game.eti")
    probe = provider.probe([archive])
    assert probe.ok and probe.format == "zip" and probe.volumes == ("game.eti",)
    assert [(e.path, e.kind, e.size) for e in provider.entries([archive])] == [
        ("data", EntryKind.DIR, 0),
        ("data/maps/e1m1.bsp", EntryKind.FILE, 80_000),
        ("empty.cfg", EntryKind.FILE, 0),
        ("readme.txt", EntryKind.FILE, 500),
    ]
    dest = tmp_path / "out"
    provider.unpack([archive], dest)
    assert (dest / "data" / "maps" / "e1m1.bsp").read_bytes() == b"\x00\x01" * 40_000
    assert (dest / "empty.cfg").read_bytes() == b""
    assert (dest / "readme.txt").read_text() == "hello lan\n" * 50


@pytest.mark.parametrize(("mode", "fmt"), [("w", "tar"), ("w:gz", "tar.gz"), ("w:xz", "tar.xz")])
def test_tar_named_eti_unpacks(mode, fmt, provider, tmp_path):
    src = tmp_path / "src"
    archive = make_tar(tmp_path / "game.eti", src, mode)
    probe = provider.probe([archive])
    assert probe.ok and probe.format == fmt
    paths = {e.path for e in provider.entries([archive])}
    assert "./data/maps/e1m1.bsp" in paths and "." not in paths and "./" not in paths
    dest = tmp_path / "out"
    provider.unpack([archive], dest)
    for rel in ("data/maps/e1m1.bsp", "empty.cfg", "readme.txt"):
        assert (dest / rel).read_bytes() == (src / rel).read_bytes()
    assert listing(dest) == listing(src)


def test_7z_made_by_libarchive_unpacks(provider, tmp_path, monkeypatch):
    import libarchive

    src = tmp_path / "src"
    (src / "data").mkdir(parents=True)
    (src / "data" / "pak0.pak").write_bytes(os.urandom(100_000))
    (src / "empty.cfg").write_bytes(b"")
    monkeypatch.chdir(src)
    archive = tmp_path / "game.eti"
    with libarchive.file_writer(str(archive), "7zip") as writer:
        writer.add_files("data", "empty.cfg")
    probe = provider.probe([archive])
    assert probe.ok and probe.format == "7z"
    dest = tmp_path / "out"
    provider.unpack([archive], dest)
    assert (dest / "data" / "pak0.pak").read_bytes() == (src / "data" / "pak0.pak").read_bytes()
    assert (dest / "empty.cfg").read_bytes() == b""


def test_stream_order_and_blocks(provider, tmp_path):
    archive = make_zip(tmp_path / "game.eti")
    sink = Recorder()
    provider.stream([archive], sink)
    assert sink.calls == [
        ("begin", "data"),
        ("end", "data"),
        ("begin", "data/maps/e1m1.bsp"),
        ("end", "data/maps/e1m1.bsp"),
        ("begin", "empty.cfg"),
        ("end", "empty.cfg"),
        ("begin", "readme.txt"),
        ("end", "readme.txt"),
    ]
    assert sink.data["data/maps/e1m1.bsp"] == b"\x00\x01" * 40_000


def test_zip_climbing_out_is_refused(provider, tmp_path):
    archive = tmp_path / "evil.eti"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        zf.writestr("../evil", "gotcha")
    with pytest.raises(UnsafeEntryError, match=r"\.\."):
        provider.unpack([archive], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert not (tmp_path / "evil").exists()
    sink = Recorder()
    with pytest.raises(UnsafeEntryError):
        stream_listed(provider, [archive], sink)
    assert sink.calls == []


def test_sink_cancel_propagates(provider, tmp_path):
    archive = make_zip(tmp_path / "game.eti")
    with pytest.raises(Cancelled):
        provider.stream([archive], Recorder(cancel_on_write=True))
    dest = tmp_path / "out"
    with pytest.raises(Cancelled):
        provider.unpack([archive], dest, sink_wrapper=lambda s: CancelOnWrite(s))
    assert not dest.exists()
    # The RAR path too, mid multi-volume set.
    with pytest.raises(Cancelled):
        provider.stream([RAR / "rar5-vols.part1.rar"], Recorder(cancel_on_write=True))


class CancelOnWrite:
    def __init__(self, inner) -> None:
        self.inner = inner

    def begin(self, entry: Entry) -> None:
        self.inner.begin(entry)

    def write(self, data: bytes | memoryview) -> None:
        raise Cancelled("user pressed cancel")

    def end(self, entry: Entry) -> None:
        self.inner.end(entry)


# --- broken input ----------------------------------------------------------------


def test_non_archive_is_declined_and_unreadable(provider, tmp_path):
    notes = tmp_path / "notes.eti"
    notes.write_text("this is not an archive\n" * 20)
    probe = provider.probe([notes])
    assert not probe.ok
    assert probe.reason == (
        "notes.eti is not an archive libarchive can read (Unrecognized archive format)"
    )
    with pytest.raises(ArchiveError, match="notes.eti"):
        provider.entries([notes])
    with pytest.raises(ArchiveError, match="notes.eti"):
        provider.unpack([notes], tmp_path / "out")
    assert not (tmp_path / "out").exists()
    empty = tmp_path / "empty.eti"
    empty.write_bytes(b"")
    assert not provider.probe([empty]).ok


def test_truncated_rar_is_declined_and_not_unpacked(provider, tmp_path):
    data = (RAR / "rar5-crc.rar").read_bytes()
    for cut in (100, len(data) - 10):
        archive = tmp_path / f"cut{cut}.eti"
        archive.write_bytes(data[:cut])
        probe = provider.probe([archive])
        assert not probe.ok
        assert probe.reason.startswith(f"cut{cut}.eti is truncated or damaged")
        dest = tmp_path / f"out{cut}"
        dest.mkdir()
        with pytest.raises(ArchiveError, match=f"cut{cut}.eti"):
            provider.unpack([archive], dest)
        assert listing(dest) == []


def test_truncated_tar_gz_is_refused_with_no_output(provider, tmp_path):
    full = make_tar(tmp_path / "full.tar.gz", tmp_path / "src")
    archive = tmp_path / "cut.eti"
    archive.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    dest = tmp_path / "out"
    with pytest.raises(ArchiveError, match=r"cut\.eti.*truncated"):
        provider.unpack([archive], dest)
    assert not dest.exists()
    # Cut late, the first header still reads: the listing pass finds the damage.
    late = tmp_path / "late.eti"
    late.write_bytes(full.read_bytes()[:-200])
    assert provider.probe([late]).ok
    with pytest.raises(ArchiveError, match=r"^cannot read late\.eti: .+"):
        provider.unpack([late], dest)
    assert not dest.exists()


def test_damaged_data_fails_mid_stream_and_leaves_nothing(provider, tmp_path):
    """Headers fine, data corrupt: the error comes after files were written, and is undone."""
    archive = tmp_path / "bad.eti"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("a_first.txt", "fine\n" * 100)
        zf.writestr("b_second.bin", os.urandom(50_000))
    raw = bytearray(archive.read_bytes())
    info = zipfile.ZipFile(archive).getinfo("b_second.bin")
    start = info.header_offset + 30 + len("b_second.bin")
    for i in range(start + 100, start + 400):
        raw[i] ^= 0xFF
    archive.write_bytes(bytes(raw))
    assert provider.probe([archive]).ok  # headers alone cannot tell
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(ArchiveError, match=r"bad\.eti"):
        provider.unpack([archive], dest)
    assert listing(dest) == []


def test_encrypted_zip_is_declined(provider, tmp_path):
    import libarchive

    archive = tmp_path / "locked.eti"
    with libarchive.file_writer(
        str(archive), "zip", options="encryption=traditional", passphrase="secret"
    ) as writer:
        writer.add_file_from_memory("a.txt", 5, b"hello")
    probe = provider.probe([archive])
    assert not probe.ok and probe.encrypted
    assert probe.reason == (
        "locked.eti is password-protected; Lanspread cannot install encrypted archives"
    )


def test_mtree_is_not_read(provider, tmp_path):
    """mtree can name local files as contents; it must never be taken for an archive."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the sender's private file")
    archive = tmp_path / "sneaky.eti"
    archive.write_text(f"#mtree\n./stolen type=file contents={secret}\n")
    assert not provider.probe([archive]).ok
    with pytest.raises(ArchiveError):
        provider.stream([archive], Recorder())


def test_empty_archive_list(provider):
    assert not provider.probe([]).ok
    assert provider.entries([]) == []


# --- registration and the CLI ----------------------------------------------------


def test_hook_registers_the_provider():
    (record,) = lanspread_providers()
    assert record.name == "libarchive"
    assert isinstance(record.factory(), LibarchiveProvider)
    assert "rar5" in record.handles and "rar3 (not solid)" in record.handles
    assert set(record.kinds) == {"unpacker", "stream"}


@pytest.fixture(scope="module")
def cli_env() -> dict[str, str]:
    """The installed plugin (``pip install -e plugins/libarchive_provider``), loaded alone."""
    names = {ep.name for ep in importlib.metadata.entry_points(group="lanspread")}
    assert "libarchive" in names, f"run: {sys.executable} -m pip install -e {PLUGIN_DIR}"
    return {"LANSPREAD_LOAD_PLUGINS": "libarchive"}


def run_cli(env: dict[str, str], *args: str | Path) -> CliResult:
    return invoke(*args, env=env)


def test_cli_inspect_json(cli_env):
    proc = run_cli(
        cli_env, "inspect", RAR / "rar5-vols.part1.rar", "--provider", "libarchive", "--json"
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["provider"] == "libarchive"
    assert data["probe"]["ok"] and data["probe"]["multi_volume"]
    assert data["probe"]["volumes"] == EXPECTED["rar5-vols.part1.rar"]["volumes"]
    assert data["entries"] == EXPECTED["rar5-vols.part1.rar"]["entries"]


def test_cli_inspect_game_root(cli_env, tmp_path):
    root = tmp_path / "game"
    root.mkdir()
    make_zip(root / "a.eti")
    proc = run_cli(cli_env, "inspect", root, "--provider", "libarchive")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("provider libarchive: zip, solid=False")
    assert "data/maps/e1m1.bsp" in proc.stdout


def test_cli_declined_archive_is_one_line(cli_env):
    proc = run_cli(cli_env, "inspect", RAR / "rar3-solid.rar", "--provider", "libarchive", "--json")
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "rar3-solid.rar is a solid RAR3 archive" in lines[0]
    assert "lanspread-unrar" in lines[0]
