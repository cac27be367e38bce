"""The ``unrar`` provider against real RAR archives and a few crafted ones.

Real archives: ``tests/data/rar`` (from rarfile's test suite) with the
entries the official unrar library reports in ``EXPECTED.json``. Crafted
archives: encrypted, link and unsafe-name archives cannot be made without the
``rar`` tool, so tiny stored (uncompressed) RAR 5 and RAR 3 archives are built
here from the format description; the encrypted ones are real AES-256
archives that unrar decrypts with the right password (checked below).
"""

from __future__ import annotations

import json
import shutil
import time
import zlib
from pathlib import Path

import pytest
import rarfile
from unrar.cffi.unrarlib import BadRarPassword, RarArchive

from lanspread_core import Cancelled, Entry, EntryKind
from lanspread_core.archive.listing import stream_listed
from lanspread_core.errors import ArchiveError, UnsafeEntryError
from lanspread_unrar.provider import ENCRYPTED, ArchiveSet, UnrarProvider
from support.cli import invoke
from support.data import RAR_FIXTURES
from support.rarcraft import PASSWORD, RAR5_SIG, rar3, rar5

FIXTURES = RAR_FIXTURES
EXPECTED: dict[str, dict] = json.loads((FIXTURES / "EXPECTED.json").read_text("utf-8"))
SAFE = sorted(n for n, e in EXPECTED.items() if all(x["kind"] != "symlink" for x in e["entries"]))
EVIL = "rar5-evil-symlink-traversal.rar"
VOL_SETS = ("rar3-vols", "rar5-vols")


@pytest.fixture
def provider() -> UnrarProvider:
    return UnrarProvider()


class Recorder:
    """A sink that remembers every call and the bytes of every file."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.data: dict[str, bytearray] = {}
        self.writes: dict[str, int] = {}
        self._current: str | None = None

    def begin(self, entry: Entry) -> None:
        self.calls.append(("begin", entry.path))
        self._current = entry.path
        self.data[entry.path] = bytearray()
        self.writes[entry.path] = 0

    def write(self, data: bytes | memoryview) -> None:
        assert self._current is not None
        self.data[self._current] += data
        self.writes[self._current] += 1

    def end(self, entry: Entry) -> None:
        self.calls.append(("end", entry.path))
        self._current = None


class CancelAfter(Recorder):
    def __init__(self, writes: int) -> None:
        super().__init__()
        self.limit = writes
        self.total = 0

    def write(self, data: bytes | memoryview) -> None:
        super().write(data)
        self.total += 1
        if self.total >= self.limit:
            raise Cancelled("cancelled by the test")


def tree(root: Path) -> dict[str, tuple[str, int, str]]:
    """Every path under ``root``: kind, size and CRC32 (files)."""
    out: dict[str, tuple[str, int, str]] = {}
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_symlink():
            out[rel] = ("symlink", 0, "")
        elif path.is_dir():
            out[rel] = ("dir", 0, "")
        else:
            data = path.read_bytes()
            out[rel] = ("file", len(data), f"{zlib.crc32(data):08x}")
    return out


def expected_tree(name: str) -> dict[str, tuple[str, int, str]]:
    out: dict[str, tuple[str, int, str]] = {}
    for e in EXPECTED[name]["entries"]:
        parts = e["path"].split("/")
        for i in range(1, len(parts)):
            out.setdefault("/".join(parts[:i]), ("dir", 0, ""))
        if e["kind"] == "dir":
            out[e["path"]] = ("dir", 0, "")
        else:
            out[e["path"]] = ("file", e["size"], e["crc32"])
    return out


def copy_set(stem: str, dest: Path, suffix: str = ".eti") -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for src in sorted(FIXTURES.glob(f"{stem}.part*.rar")):
        target = dest / (src.name[: -len(".rar")] + suffix)
        shutil.copyfile(src, target)
        out.append(target)
    return out


# --- crafted archives -------------------------------------------------------

# --- every real archive -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_probe(provider: UnrarProvider, name: str) -> None:
    exp = EXPECTED[name]
    result = provider.probe([FIXTURES / name])
    assert result.ok, result.reason
    assert result.reason == ""
    assert result.solid is exp["solid"]
    assert result.multi_volume is exp["multi_volume"]
    assert result.encrypted is False
    assert [Path(v).name for v in result.volumes] == exp["volumes"]
    signature = (FIXTURES / name).read_bytes()[:8]
    assert result.format == ("rar5" if signature == RAR5_SIG else "rar3")


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_entries(provider: UnrarProvider, name: str) -> None:
    got = provider.entries([FIXTURES / name])
    exp = EXPECTED[name]["entries"]
    assert [(e.path, str(e.kind), e.size) for e in got] == [
        (x["path"], x["kind"], x["size"]) for x in exp
    ]
    for entry, x in zip(got, exp, strict=True):
        if entry.kind is EntryKind.FILE and name != "rar5-blake.rar":
            assert entry.to_json()["crc32"] == x["crc32"], entry.path
        else:
            # dirs and links have no CRC; BLAKE2 archives have none either
            assert entry.crc32 is None, entry.path


@pytest.mark.parametrize("name", SAFE)
def test_unpack_matches_expected(provider: UnrarProvider, name: str, tmp_path: Path) -> None:
    dest = tmp_path / "local"
    provider.unpack([FIXTURES / name], dest)
    assert tree(dest) == expected_tree(name)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["local"]


@pytest.mark.parametrize("name", SAFE)
def test_stream_order_and_bytes(provider: UnrarProvider, name: str) -> None:
    sink = Recorder()
    provider.stream([FIXTURES / name], sink)
    paths = [x["path"] for x in EXPECTED[name]["entries"]]
    assert sink.calls == [c for p in paths for c in (("begin", p), ("end", p))]
    for x in EXPECTED[name]["entries"]:
        if x["kind"] == "file":
            data = bytes(sink.data[x["path"]])
            assert (len(data), f"{zlib.crc32(data):08x}") == (x["size"], x["crc32"])
        else:
            assert sink.writes[x["path"]] == 0


def test_split_file_is_passed_through_not_buffered(provider: UnrarProvider) -> None:
    for stem in VOL_SETS:
        sink = Recorder()
        provider.stream([FIXTURES / f"{stem}.part1.rar"], sink)
        assert sink.writes["vols/bigfile.txt"] >= 3  # at least one chunk per volume


# --- symlink traversal ------------------------------------------------------


def test_evil_symlink_unpack_writes_nothing(provider: UnrarProvider, tmp_path: Path) -> None:
    game = tmp_path / "game"
    game.mkdir()
    before = tree(tmp_path)
    with pytest.raises(UnsafeEntryError, match="symlink"):
        provider.unpack([FIXTURES / EVIL], game / "local")
    assert tree(tmp_path) == before
    assert not (tmp_path.parent / "pwned.txt").exists()
    empty = game / "existing"
    empty.mkdir()
    with pytest.raises(UnsafeEntryError):
        provider.unpack([FIXTURES / EVIL], empty)
    assert list(empty.iterdir()) == []
    assert not list(tmp_path.rglob("pwned.txt"))


def test_evil_symlink_stream_emits_nothing(provider: UnrarProvider) -> None:
    sink = Recorder()
    with pytest.raises(UnsafeEntryError):
        stream_listed(provider, [FIXTURES / EVIL], sink)
    assert sink.calls == []


# --- multi-volume sets named .eti -------------------------------------------


@pytest.mark.parametrize("stem", VOL_SETS)
def test_volumes_named_eti(provider: UnrarProvider, stem: str, tmp_path: Path) -> None:
    vols = copy_set(stem, tmp_path / "game")
    first = f"{stem}.part1.rar"
    for archives in (vols, vols[:1]):  # a game root's list, or the first volume alone
        result = provider.probe(archives)
        assert result.ok, result.reason
        assert result.multi_volume
        assert [Path(v).name for v in result.volumes] == [v.name for v in vols]
        got = [e.to_json() for e in provider.entries(archives)]
        assert got == EXPECTED[first]["entries"]
    dest = tmp_path / "game" / "local"
    provider.unpack(vols, dest)
    assert tree(dest) == expected_tree(first)


def test_game_root_with_two_sets(provider: UnrarProvider, tmp_path: Path) -> None:
    root = tmp_path / "game"
    a = copy_set("rar3-vols", root)
    (root / "zz-extra.eti").write_bytes((FIXTURES / "rar5-subdirs.rar").read_bytes())
    archives = sorted(root.glob("*.eti"))
    result = provider.probe(archives)
    assert result.ok, result.reason
    assert result.format == "rar3, rar5"
    assert [Path(v).name for v in result.volumes] == [v.name for v in a] + ["zz-extra.eti"]
    paths = [e.path for e in provider.entries(archives)]
    expected = EXPECTED["rar3-vols.part1.rar"]["entries"] + EXPECTED["rar5-subdirs.rar"]["entries"]
    assert paths == [x["path"] for x in expected]
    dest = root / "local"
    provider.unpack(archives, dest)
    assert tree(dest) == expected_tree("rar3-vols.part1.rar") | expected_tree("rar5-subdirs.rar")


def test_continuation_without_first_volume(provider: UnrarProvider, tmp_path: Path) -> None:
    vols = copy_set("rar5-vols", tmp_path)
    vols[0].unlink()
    result = provider.probe(vols[1:])
    assert not result.ok
    assert "rar5-vols.part2.eti is volume 2 of a multi-volume set" in result.reason
    assert "first volume is not among the archives" in result.reason
    # given on its own, a continuation volume is refused the same way
    vols2 = copy_set("rar3-vols", tmp_path / "again")
    result = provider.probe([vols2[1]])
    assert not result.ok and "rar3-vols.part2.eti is volume 2" in result.reason
    with pytest.raises(ArchiveError, match="first volume"):
        provider.entries([vols2[1]])


@pytest.mark.parametrize("missing", [1, 2])
def test_missing_volume(provider: UnrarProvider, tmp_path: Path, missing: int) -> None:
    vols = copy_set("rar3-vols", tmp_path / "game")
    vols[missing].unlink()
    archives = sorted((tmp_path / "game").glob("*.eti"))
    result = provider.probe(archives)
    assert not result.ok
    assert f"volume {vols[missing].name} is missing" in result.reason
    dest = tmp_path / "game" / "local"
    with pytest.raises(ArchiveError, match="is missing"):
        provider.unpack(archives, dest)
    assert not dest.exists()


def test_volume_vanishing_mid_stream(provider: UnrarProvider, tmp_path: Path) -> None:
    """unrar asks for a volume that is gone: one sentence, no partial output."""
    vols = copy_set("rar5-vols", tmp_path / "game")

    class DeleteLastVolume(Recorder):
        def begin(self, entry: Entry) -> None:
            super().begin(entry)
            vols[2].unlink(missing_ok=True)

    def wrap(sink):  # noqa: ANN001, ANN202
        inner = DeleteLastVolume()

        class Both:
            def begin(self, entry: Entry) -> None:
                inner.begin(entry)
                sink.begin(entry)

            def write(self, data: bytes | memoryview) -> None:
                sink.write(data)

            def end(self, entry: Entry) -> None:
                sink.end(entry)

        return Both()

    dest = tmp_path / "game" / "local"
    with pytest.raises(ArchiveError) as info:
        provider.unpack(vols, dest, wrap)
    assert (
        str(info.value) == "rar5-vols.part1.eti needs volume rar5-vols.part3.eti, which is missing"
    )
    assert not dest.exists()


# --- damaged and foreign files ----------------------------------------------


def test_not_an_archive(provider: UnrarProvider, tmp_path: Path) -> None:
    bogus = tmp_path / "x.eti"
    bogus.write_bytes(b"this is a text file, not an archive\n" * 10)
    result = provider.probe([bogus])
    assert not result.ok
    assert result.reason == "x.eti is not a RAR archive"
    with pytest.raises(ArchiveError, match=r"^x\.eti is not a RAR archive$"):
        provider.entries([bogus])
    dest = tmp_path / "local"
    with pytest.raises(ArchiveError):
        provider.unpack([bogus], dest)
    assert not dest.exists()
    assert not provider.probe([]).ok


def test_truncated_archive(provider: UnrarProvider, tmp_path: Path) -> None:
    data = (FIXTURES / "rar5-crc.rar").read_bytes()
    cut = tmp_path / "cut.eti"
    cut.write_bytes(data[: len(data) // 2])
    result = provider.probe([cut])
    assert not result.ok and result.reason.startswith("cut.eti is damaged or truncated")
    dest = tmp_path / "local"
    with pytest.raises(ArchiveError, match="^cut.eti "):
        provider.unpack([cut], dest)
    assert not dest.exists()


def test_truncated_at_a_header_boundary(provider: UnrarProvider, tmp_path: Path) -> None:
    """Cut just before the end-of-archive block, both libraries read a shorter
    archive cleanly; the probe must still refuse it."""
    src = FIXTURES / "rar3-subdirs.rar"
    offsets: list[int] = []
    rarfile.RarFile(
        str(src),
        info_callback=lambda h: (
            offsets.append(h.header_offset) if h.type == rarfile.RAR_BLOCK_ENDARC else None
        ),
    )
    cut = tmp_path / "cut.eti"
    cut.write_bytes(src.read_bytes()[: offsets[0]])
    result = provider.probe([cut])
    assert not result.ok
    assert (
        result.reason == "cut.eti ends without its end-of-archive marker; it is probably truncated"
    )


@pytest.mark.parametrize("name", ["rar3-subdirs.rar", "rar5-solid.rar", "unicode.rar"])
def test_every_truncation_is_refused(provider: UnrarProvider, tmp_path: Path, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    cut = tmp_path / "cut.eti"
    for size in range(len(data)):
        cut.write_bytes(data[:size])
        if provider.probe([cut]).ok:
            with pytest.raises(ArchiveError):
                provider.stream([cut], Recorder())


@pytest.mark.parametrize("name", ["rar5-crc.rar", "rar3-solid.rar", "rar5-blake.rar"])
def test_corrupt_bytes_never_unpack(provider: UnrarProvider, tmp_path: Path, name: str) -> None:
    data = (FIXTURES / name).read_bytes()
    bad = tmp_path / "bad.eti"
    dest = tmp_path / "local"
    streamed = 0
    for offset in range(8, len(data), 31):
        flipped = bytearray(data)
        flipped[offset] ^= 0x55
        bad.write_bytes(flipped)
        if not provider.probe([bad]).ok:
            continue
        streamed += 1
        with pytest.raises(ArchiveError, match="^bad.eti "):
            provider.unpack([bad], dest)
        assert not dest.exists()
    assert streamed > 0  # the data area was hit, not only headers


# --- encryption ---------------------------------------------------------------


def test_crafted_encrypted_archives_are_real(tmp_path: Path) -> None:
    """The test's encrypted archives decrypt with the password in unrar itself."""
    for encrypt_headers in (False, True):
        path = tmp_path / f"enc{int(encrypt_headers)}.rar"
        path.write_bytes(
            rar5([("a.txt", b"secret data\n")], password=PASSWORD, encrypt_headers=encrypt_headers)
        )
        chunks: list[bytes] = []
        with RarArchive.open_for_processing(path, pwd=PASSWORD) as arc:
            for header in arc.iterate_headers():
                header.test(chunks.append)
        assert b"".join(chunks) == b"secret data\n"
    with (
        RarArchive.open_for_processing(tmp_path / "enc0.rar") as arc,
        pytest.raises(BadRarPassword),
    ):
        for header in arc.iterate_headers():
            header.test()


@pytest.mark.parametrize("encrypt_headers", [False, True])
def test_encrypted_archive_is_refused(
    provider: UnrarProvider, tmp_path: Path, encrypt_headers: bool
) -> None:
    path = tmp_path / "locked.eti"
    path.write_bytes(
        rar5([("a.txt", b"x" * 100)], password=PASSWORD, encrypt_headers=encrypt_headers)
    )
    result = provider.probe([path])
    assert not result.ok
    assert result.encrypted
    assert result.format == "rar5"
    assert result.reason == f"locked.eti {ENCRYPTED}"
    dest = tmp_path / "local"
    with pytest.raises(ArchiveError, match="password-protected"):
        provider.unpack([path], dest)
    assert not dest.exists()


def test_encrypted_file_refused_by_unrar_itself(provider: UnrarProvider, tmp_path: Path) -> None:
    """Past the probe, unrar's own password prompt becomes the same sentence."""
    path = tmp_path / "locked.eti"
    path.write_bytes(rar5([("a.txt", b"x" * 100)], password=PASSWORD))
    s = ArchiveSet(path, (path,), "rar5", False, False)
    sink = Recorder()
    with pytest.raises(ArchiveError) as info:
        provider._stream_set(s, provider._list(s), sink)
    assert str(info.value) == f"locked.eti {ENCRYPTED}"
    assert bytes(sink.data["a.txt"]) == b""


# --- links, devices, unsafe names --------------------------------------------


def test_link_and_device_kinds(provider: UnrarProvider, tmp_path: Path) -> None:
    unix, windows = 3, 2
    r3 = tmp_path / "r3.eti"
    r3.write_bytes(
        rar3(
            [
                ("f.txt", b"hello", unix, 0o100644),
                ("ln", b"../../etc", unix, 0o120777),
                ("tty", b"", unix, 0o020644),
                ("fifo", b"", unix, 0o010644),
                ("win.txt", b"abc", windows, 0x20),
            ]
        )
    )
    assert [(e.path, e.kind) for e in provider.entries([r3])] == [
        ("f.txt", EntryKind.FILE),
        ("ln", EntryKind.SYMLINK),
        ("tty", EntryKind.DEVICE),
        ("fifo", EntryKind.DEVICE),
        ("win.txt", EntryKind.FILE),
    ]
    for redir, kind in [(1, EntryKind.SYMLINK), (2, EntryKind.SYMLINK), (3, EntryKind.SYMLINK),
                        (4, EntryKind.HARDLINK), (5, EntryKind.HARDLINK)]:  # fmt: skip
        r5 = tmp_path / f"r5-{redir}.eti"
        r5.write_bytes(rar5([("lnk", b"")], redirect=(redir, "target")))
        assert provider.entries([r5]) == [Entry("lnk", kind, 0, None)]
        with pytest.raises(UnsafeEntryError):
            stream_listed(provider, [r5], Recorder())
    dest = tmp_path / "local"
    with pytest.raises(UnsafeEntryError, match="'ln' is a symlink"):
        provider.unpack([r3], dest)
    assert not dest.exists()


@pytest.mark.parametrize(
    "name", ["../evil.txt", "/abs.txt", "a/../../evil.txt", "a\\..\\..\\evil.txt", "C:/evil.txt"]
)
def test_unsafe_names(provider: UnrarProvider, tmp_path: Path, name: str) -> None:
    path = tmp_path / "names.eti"
    path.write_bytes(rar5([("ok.txt", b"fine"), (name, b"pwned")]))
    assert [e.path for e in provider.entries([path])] == ["ok.txt", name]
    sink = Recorder()
    with pytest.raises(UnsafeEntryError):
        stream_listed(provider, [path], sink)
    assert sink.calls == []
    root = tmp_path / "a" / "b"
    root.mkdir(parents=True)
    with pytest.raises(UnsafeEntryError):
        provider.unpack([path], root / "local")
    assert not list(tmp_path.rglob("evil.txt")) and not list(tmp_path.rglob("ok.txt"))


#: names beyond the Basic Multilingual Plane (mathematical letters, emoji), and one within it
ASTRAL = ["\U0001d4d0ngel/\U0001f600 save.txt", "caf\u00e9.txt", "\U0001d510oon/\U0001d7d8.dat"]


def _astral_rar3(tmp_path: Path) -> Path:
    path = tmp_path / "astral.eti"
    path.write_bytes(rar3([(name, name.encode() * 3, 3, 0o100644) for name in ASTRAL]))
    return path


def test_rar3_names_beyond_the_bmp(provider: UnrarProvider, tmp_path: Path) -> None:
    # RAR 3 stores such a name as UTF-16 surrogate pairs; rarfile reads it so
    path = _astral_rar3(tmp_path)
    assert [i.filename for i in rarfile.RarFile(str(path)).infolist()] == ASTRAL
    assert [e.path for e in provider.entries([path])] == ASTRAL
    sink = Recorder()
    stream_listed(provider, [path], sink)
    assert {k: bytes(v) for k, v in sink.data.items()} == {n: n.encode() * 3 for n in ASTRAL}
    out = tmp_path / "out"
    provider.unpack([path], out)
    written = {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}
    assert written == {n: n.encode() * 3 for n in ASTRAL}


def test_cli_inspect_and_install_names_beyond_the_bmp(tmp_path: Path) -> None:
    root = tmp_path / "games" / "moon"
    root.mkdir(parents=True)
    _astral_rar3(root)
    (root / "version.ini").write_text("1\n")
    proc = invoke("inspect", str(root), "--provider", "unrar", "--json")
    assert proc.returncode == 0, proc.stderr
    assert [e["path"] for e in json.loads(proc.stdout)["entries"]] == ASTRAL
    proc = invoke("inspect", str(root), "--provider", "unrar")
    assert proc.returncode == 0, proc.stderr
    assert all(name in proc.stdout for name in ASTRAL)
    state = tmp_path / "state"
    proc = invoke(
        "install", "moon", "--provider", "unrar", "--games-dir", root.parent, "--state-dir", state
    )
    assert proc.returncode == 0, proc.stderr
    assert sorted(
        p.relative_to(root / "local").as_posix() for p in (root / "local").rglob("*") if p.is_file()
    ) == sorted(ASTRAL)


# --- cancellation -------------------------------------------------------------


@pytest.mark.parametrize("name", ["rar3-vols.part1.rar", "rar5-vols.part1.rar", "rar5-solid.rar"])
def test_cancel_mid_file(provider: UnrarProvider, name: str) -> None:
    sink = CancelAfter(writes=1)
    started = time.monotonic()
    with pytest.raises(Cancelled, match="cancelled by the test"):
        provider.stream([FIXTURES / name], sink)
    assert time.monotonic() - started < 2
    first = EXPECTED[name]["entries"][0]["path"]
    assert sink.calls == [("begin", first)]  # stopped inside the first file
    assert sink.total == 1


def test_cancel_during_unpack_removes_output(provider: UnrarProvider, tmp_path: Path) -> None:
    vols = copy_set("rar5-vols", tmp_path / "game")

    def cancel_on_second_write(sink):  # noqa: ANN001, ANN202
        class Wrapped:
            writes = 0

            def begin(self, entry: Entry) -> None:
                sink.begin(entry)

            def write(self, data: bytes | memoryview) -> None:
                sink.write(data)
                Wrapped.writes += 1
                if Wrapped.writes == 2:
                    raise Cancelled("stop")

            def end(self, entry: Entry) -> None:
                sink.end(entry)

        return Wrapped()

    dest = tmp_path / "game" / "local"
    with pytest.raises(Cancelled):
        provider.unpack(vols, dest, cancel_on_second_write)
    assert not dest.exists()
    provider.unpack(vols, dest)  # and the archive is not left in a bad state
    assert tree(dest) == expected_tree("rar5-vols.part1.rar")


# --- through the CLI ------------------------------------------------------------


def test_cli_plugins_lists_unrar() -> None:
    proc = invoke("plugins", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    info = data["providers"]["unrar"]
    assert info["plugin"] == "unrar"
    assert info["handles"] == ["rar3", "rar5", "solid", "multi-volume"]
    assert {"name": "unrar", "distribution": "lanspread-unrar"}.items() <= next(
        p for p in data["plugins"] if p["name"] == "unrar"
    ).items()


def test_cli_inspect_archive_and_game_root(tmp_path: Path) -> None:
    proc = invoke("inspect", str(FIXTURES / "rar3-subdirs.rar"), "--provider", "unrar", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["provider"] == "unrar"
    assert data["probe"]["ok"] and data["probe"]["format"] == "rar3"
    assert [e["path"] for e in data["entries"]] == [
        x["path"] for x in EXPECTED["rar3-subdirs.rar"]["entries"]
    ]
    root = tmp_path / "game"
    copy_set("rar5-vols", root)
    proc = invoke("inspect", str(root), "--provider", "unrar", "--json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["probe"]["multi_volume"] is True
    assert len(data["probe"]["volumes"]) == 3
    assert data["entries"] == EXPECTED["rar5-vols.part1.rar"]["entries"]


def test_cli_inspect_refusal_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "x.eti"
    bogus.write_bytes(b"not rar")
    proc = invoke("inspect", str(bogus), "--provider", "unrar", "--json")
    assert proc.returncode != 0
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        "lanspread: provider 'unrar' cannot handle this: x.eti is not a RAR archive"
    )
