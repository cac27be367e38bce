"""The lanspread-fixture plugin: fixture format, FixtureProvider, game sets, CLI.

The provider is tested in-process against the core's contract (probe,
entries, one-pass stream, inherited unpack that undoes itself on failure);
the commands are tested through the ``lanspread`` command line (in this
process), with only this plugin loaded so concurrently developed plugins
cannot interfere.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import pytest
import rarfile

from lanspread_core.archive.listing import stream_listed
from lanspread_core.archive.protocol import Entry, EntryKind
from lanspread_core.errors import ArchiveError, UnsafeEntryError, UsageError
from lanspread_fixture.fixtureformat import (
    END_MARK,
    MAGIC,
    FixtureWriter,
    iter_archive,
    read_entries,
)
from lanspread_fixture.gamesets import (
    DEFAULT_SIZE,
    GAMES,
    SETS,
    create_set,
    member_chunks,
    member_sizes,
)
from lanspread_fixture.provider import FixtureProvider
from lanspread_fixture.rarwriter import RarWriter
from support.cli import CliResult, invoke

MiB = 1 << 20


class RecordingSink:
    """An EntrySink that keeps everything, to check the order of calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.files: dict[str, bytes] = {}
        self.chunk_sizes: list[int] = []
        self._buf = bytearray()

    def begin(self, entry: Entry) -> None:
        self.calls.append(("begin", entry.path))
        self._buf = bytearray()

    def write(self, data: bytes | memoryview) -> None:
        self.chunk_sizes.append(len(data))
        self._buf += data

    def end(self, entry: Entry) -> None:
        self.calls.append(("end", entry.path))
        if entry.kind is EntryKind.FILE:
            self.files[entry.path] = bytes(self._buf)


def _sample(path: Path, big: int = 2 * MiB + 777) -> dict[str, bytes | None]:
    """Write a fixture archive with dirs, an empty file, a streamed >1 MiB file."""
    blob = os.urandom(big)
    content: dict[str, bytes | None] = {
        "data": None,
        "data/sub": None,
        "data/sub/small.txt": b"small\n",
        "data/big.bin": blob,
        "data/empty.cfg": b"",
        "données/été.txt": "Ünïcödé\n".encode(),
    }
    with FixtureWriter(path) as w:
        w.add_dir("data")
        w.add_dir("data/sub/")
        w.add_file("data/sub/small.txt", b"small\n")
        w.add_file_from(
            "data/big.bin", len(blob), (blob[i : i + 300_000] for i in range(0, big, 300_000))
        )
        w.add_file("data/empty.cfg", b"")
        w.add_file("données/été.txt", "Ünïcödé\n".encode())
    return content


def _tree(root: Path) -> dict[str, bytes | None]:
    out: dict[str, bytes | None] = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        out[rel] = None if p.is_dir() else p.read_bytes()
    return out


# -- the format -----------------------------------------------------------------


def test_format_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "a.eti"
    content = _sample(path)
    raw = path.read_bytes()
    assert raw.startswith(MAGIC) and raw.endswith(b"\x00\x00\x00\x00" + END_MARK)
    entries = read_entries(path)
    assert [e.path for e in entries] == list(content)
    for e in entries:
        data = content[e.path]
        if data is None:
            assert e == Entry(e.path, EntryKind.DIR, 0, None)
        else:
            assert e == Entry(e.path, EntryKind.FILE, len(data), zlib.crc32(data))
    got = {
        e.path: (b"".join(chunks) if e.kind is EntryKind.FILE else None)
        for e, chunks in iter_archive(path)
    }
    assert got == content


def test_writer_refuses_wrong_length_and_cleans_up(tmp_path: Path) -> None:
    path = tmp_path / "bad.eti"
    with pytest.raises(ValueError, match="promised"), FixtureWriter(path) as w:
        w.add_file_from("x", 4, [b"ab"])
    assert not path.exists()


# -- the provider -----------------------------------------------------------------


def test_probe(tmp_path: Path) -> None:
    a, b = tmp_path / "a.eti", tmp_path / "b.eti"
    _sample(a, big=10)
    _sample(b, big=10)
    provider = FixtureProvider()
    probe = provider.probe([a, b])
    assert probe.ok and probe.format == "lanspread-fixture"
    assert probe.volumes == ("a.eti", "b.eti")
    assert not (probe.solid or probe.multi_volume or probe.encrypted)

    rar = tmp_path / "x.eti"
    with RarWriter(rar) as w:
        w.add_file("f", b"data")
    probe = provider.probe([a, rar])
    assert not probe.ok and probe.reason == "x.eti is not a fixture archive"
    assert not provider.probe([]).ok
    missing = provider.probe([tmp_path / "missing.eti"])
    assert not missing.ok and "missing.eti" in missing.reason
    with pytest.raises(ArchiveError, match="not a fixture archive"):
        provider.entries([rar])


def test_entries_and_stream_over_two_archives(tmp_path: Path) -> None:
    a, b = tmp_path / "a.eti", tmp_path / "b.eti"
    first = _sample(a)
    with FixtureWriter(b) as w:
        w.add_dir("data")
        w.add_file("data/second.bin", b"2" * 10)
    provider = FixtureProvider()
    entries = provider.entries([a, b])
    assert [e.path for e in entries] == [*first, "data", "data/second.bin"]

    sink = RecordingSink()
    provider.stream([a, b], sink)
    expected_calls = [(c, e.path) for e in entries for c in ("begin", "end")]
    assert sink.calls == expected_calls
    assert max(sink.chunk_sizes) <= MiB
    assert sink.files["data/big.bin"] == first["data/big.bin"]
    assert sink.files["data/empty.cfg"] == b""
    assert sink.files["data/second.bin"] == b"2" * 10


def test_unpack_is_inherited_and_writes_the_tree(tmp_path: Path) -> None:
    a = tmp_path / "a.eti"
    content = _sample(a)
    dest = tmp_path / "out"
    FixtureProvider().unpack([a], dest)
    want = dict(content)
    want["données"] = None
    assert _tree(dest) == dict(sorted(want.items()))


def _truncations(path: Path) -> list[bytes]:
    raw = path.read_bytes()
    cuts = [
        3,
        len(MAGIC) + 2,
        len(MAGIC) + 20,
        len(raw) // 2,
        len(raw) - len(END_MARK) - 1,
        len(raw) - 1,
    ]
    return [raw[:n] for n in cuts]


def test_truncated_archive_fails_with_no_partial_output(tmp_path: Path) -> None:
    good = tmp_path / "good.eti"
    _sample(good)
    for i, raw in enumerate(_truncations(good)):
        bad = tmp_path / f"cut{i}.eti"
        bad.write_bytes(raw)
        provider = FixtureProvider()
        with pytest.raises(ArchiveError, match=r"cut\d\.eti"):
            provider.entries([bad])
        sink = RecordingSink()
        with pytest.raises(ArchiveError):
            provider.stream([good, bad], sink)
        assert sink.calls == []  # headers are all checked before any entry is fed
        dest = tmp_path / f"out{i}"
        with pytest.raises(ArchiveError):
            provider.unpack([good, bad], dest)
        assert not dest.exists()


def test_corrupt_data_fails_with_no_partial_output(tmp_path: Path) -> None:
    path = tmp_path / "c.eti"
    content = _sample(path)
    raw = bytearray(path.read_bytes())
    big = content["data/big.bin"]
    assert big is not None
    raw[raw.index(big[:64]) + MiB + 5] ^= 0x55
    path.write_bytes(bytes(raw))
    provider = FixtureProvider()
    assert len(provider.entries([path])) == len(content)  # headers are fine
    with pytest.raises(ArchiveError, match="CRC32"):
        provider.stream([path], RecordingSink())
    dest = tmp_path / "existing-empty"
    dest.mkdir()
    with pytest.raises(ArchiveError, match="CRC32"):
        provider.unpack([path], dest)
    assert dest.is_dir() and list(dest.iterdir()) == []


@pytest.mark.parametrize(
    "tamper",
    [
        lambda raw: raw.replace(b'"kind": "file"', b'"kind": "fire"', 1),
        lambda raw: raw.replace(b'"path"', b'"pate"', 1),
        lambda raw: raw.replace(b'{"path"', b'["path"', 1),
        lambda raw: raw + b"trailing",
        lambda raw: raw[: len(MAGIC)] + b"\xff\xff\xff\x7f" + raw[len(MAGIC) + 4 :],
    ],
    ids=["bad-kind", "bad-key", "not-json", "trailing-bytes", "huge-header"],
)
def test_corrupt_headers_are_archive_errors(tmp_path: Path, tamper) -> None:
    path = tmp_path / "t.eti"
    _sample(path, big=100)
    path.write_bytes(tamper(path.read_bytes()))
    with pytest.raises(ArchiveError, match="t.eti is corrupt"):
        FixtureProvider().entries([path])


@pytest.mark.parametrize(
    "entry",
    [
        Entry("../x", EntryKind.FILE, 5, zlib.crc32(b"pwned")),
        Entry("/etc/x", EntryKind.FILE, 5, zlib.crc32(b"pwned")),
        Entry("link", EntryKind.SYMLINK, 0, None),
    ],
    ids=["dotdot", "absolute", "symlink"],
)
def test_unsafe_entries_are_refused(tmp_path: Path, entry: Entry) -> None:
    work = tmp_path / "work"
    work.mkdir()
    path = work / "evil.eti"
    with FixtureWriter(path) as w:
        w.add_file("fine.txt", b"fine")
        w.add_entry(entry, b"pwned" if entry.kind is EntryKind.FILE else b"")
    provider = FixtureProvider()
    assert provider.probe([path]).ok  # the header is well-formed, the name is not
    sink = RecordingSink()
    with pytest.raises(UnsafeEntryError):
        stream_listed(provider, [path], sink)
    assert sink.calls == []
    dest = work / "dest"
    with pytest.raises(UnsafeEntryError):
        provider.unpack([path], dest)
    assert not dest.exists()
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["evil.eti", "work"]


# -- game sets (Python API) -------------------------------------------------------


def _files(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def test_sets_overlap_as_promised() -> None:
    assert min(len(s) for s in SETS.values()) >= 2 and max(len(s) for s in SETS.values()) <= 3
    assert set(SETS["alpha"]) & set(SETS["bravo"]) == {"borealis"}
    assert set(SETS["bravo"]) & set(SETS["charlie"]) == {"cascade"}
    assert any(len(g.archives) >= 2 for g in GAMES.values())


def test_create_set_rar_matches_fixture_format(tmp_path: Path) -> None:
    """The same game in both formats holds the same entries and bytes."""
    rar_ids = create_set(tmp_path / "rar", "bravo", size=300_000)
    fx_ids = create_set(tmp_path / "fx", "bravo", size=300_000, fmt="fixture")
    assert rar_ids == fx_ids == list(SETS["bravo"])
    provider = FixtureProvider()
    for gid in rar_ids:
        game = GAMES[gid]
        assert (tmp_path / "rar" / gid / "version.ini").read_text() == f"{game.version}\n"
        names = sorted(p.name for p in (tmp_path / "rar" / gid).glob("*.eti"))
        assert names == [a.name for a in game.archives]
        fx_archives = [tmp_path / "fx" / gid / n for n in names]
        fx_entries = provider.entries(fx_archives)
        rar_entries = []
        sink = RecordingSink()
        provider.stream(fx_archives, sink)
        for n in names:
            with rarfile.RarFile(tmp_path / "rar" / gid / n) as rf:
                for info in rf.infolist():
                    path = info.filename.rstrip("/")
                    if info.is_dir():
                        rar_entries.append(Entry(path, EntryKind.DIR, 0, None))
                    else:
                        rar_entries.append(Entry(path, EntryKind.FILE, info.file_size, info.CRC))
                        assert rf.read(info) == sink.files[path]
        assert rar_entries == fx_entries
        assert sum(e.size for e in fx_entries) == 300_000


def test_unpacked_game_matches_the_generator(tmp_path: Path) -> None:
    create_set(tmp_path / "g", "charlie", fmt="fixture")
    game = GAMES["dunes"]
    root = tmp_path / "g" / "dunes"
    dest = tmp_path / "installed"
    FixtureProvider().unpack(sorted(root.glob("*.eti")), dest)
    sizes = member_sizes(game, DEFAULT_SIZE)
    members = [m for a in game.archives for m in a.members]
    want = {
        m.path: b"".join(member_chunks(game, m, sizes[m.path])) for m in members if m.kind != "dir"
    }
    assert _files(dest) == dict(sorted(want.items()))
    assert (dest / "Dunes/a/b/c/d").is_dir()
    assert sum(len(v) for v in want.values()) == DEFAULT_SIZE


def test_create_set_is_deterministic_across_sets(tmp_path: Path) -> None:
    create_set(tmp_path / "a", "alpha", size=200_000)
    create_set(tmp_path / "b", "bravo", size=200_000)
    create_set(tmp_path / "a2", "alpha", size=200_000)
    assert _files(tmp_path / "a") == _files(tmp_path / "a2")
    assert _files(tmp_path / "a" / "borealis") == _files(tmp_path / "b" / "borealis")


def test_create_set_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="unknown fixture set"):
        create_set(tmp_path, "zulu")
    with pytest.raises(UsageError, match="unknown fixture format"):
        create_set(tmp_path, "alpha", fmt="zip")
    with pytest.raises(UsageError, match="--size"):
        create_set(tmp_path, "alpha", size=-1)
    afile = tmp_path / "file"
    afile.write_text("x")
    with pytest.raises(UsageError, match="not a folder"):
        create_set(afile, "alpha")
    bad_catalog = tmp_path / "cat.json"
    bad_catalog.write_text("{not json")
    with pytest.raises(UsageError, match="not readable JSON"):
        create_set(tmp_path / "g", "alpha", catalog=bad_catalog)


def test_recreate_replaces_stale_archives_and_sentinel(tmp_path: Path) -> None:
    create_set(tmp_path, "alpha", size=1000)
    stale = tmp_path / "aurora" / "zz-stale.eti"
    stale.write_bytes(b"old")
    (tmp_path / "aurora" / "local").mkdir()
    create_set(tmp_path, "alpha", size=1000, fmt="fixture")
    assert not stale.exists()
    assert (tmp_path / "aurora" / "local").is_dir()  # not ours to touch
    assert FixtureProvider().probe([tmp_path / "aurora" / "aurora.eti"]).ok
    assert not list(tmp_path.rglob(".*tmp*"))


# -- the command line ---------------------------------------------------------------


def run(*args: str | Path, check: bool = True) -> CliResult:
    proc = invoke(*args, env={"LANSPREAD_LOAD_PLUGINS": "fixture"})
    if check:
        assert proc.returncode == 0, proc.stderr
    return proc


def test_cli_list_json() -> None:
    data = json.loads(run("fixtures", "list", "--json").stdout)
    sets = {s["name"]: s for s in data["sets"]}
    assert list(sets) == ["alpha", "bravo", "charlie"]
    ids = {name: [g["id"] for g in s["games"]] for name, s in sets.items()}
    assert ids == {k: list(v) for k, v in SETS.items()}
    borealis = next(g for g in sets["alpha"]["games"] if g["id"] == "borealis")
    assert borealis["name"] == "Borealis Drift" and borealis["version"] == "2.1.0"
    assert "alpha" in run("fixtures", "list").stdout


def test_cli_create_merges_catalog_and_is_deterministic(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    catalog.write_text(
        json.dumps(
            {
                "games": [
                    {"id": "other", "name": "Other", "version": "9", "hashes": {"manifest": "ab"}},
                    {
                        "id": "cascade",
                        "name": "Old",
                        "version": "0",
                        "extra": 1,
                        "hashes": {"manifest": "stale"},
                    },
                ],
                "note": "kept",
            }
        )
    )
    run("fixtures", "create", tmp_path / "p1", "--set", "alpha", "--catalog", catalog)
    run(
        "fixtures",
        "create",
        tmp_path / "p2",
        "--set",
        "bravo",
        "--catalog",
        catalog,
        "--size",
        "128K",
    )
    run("fixtures", "create", tmp_path / "p3", "--set", "bravo", "--size", "131072")
    data = json.loads(catalog.read_text())
    assert data["note"] == "kept"
    games = {g["id"]: g for g in data["games"]}
    assert [g["id"] for g in data["games"]] == ["other", "cascade", "aurora", "borealis", "ember"]
    assert games["cascade"] == {
        "id": "cascade",
        "name": "Cascade Tactics",
        "version": "0.9.3",
        "extra": 1,
    }
    assert games["other"] == {
        "id": "other",
        "name": "Other",
        "version": "9",
        "hashes": {"manifest": "ab"},
    }
    assert _files(tmp_path / "p2") == _files(tmp_path / "p3")
    assert sorted(p.name for p in (tmp_path / "p1").iterdir()) == ["aurora", "borealis"]
    assert not list(tmp_path.glob(".*tmp*"))


def test_cli_shared_games(tmp_path: Path) -> None:
    for name in SETS:
        run("fixtures", "create", tmp_path / name, "--set", name, "--size", "64K")
    ids = {name: {p.name for p in (tmp_path / name).iterdir()} for name in SETS}
    assert ids["alpha"] & ids["bravo"] == {"borealis"}
    assert ids["bravo"] & ids["charlie"] == {"cascade"}
    assert _files(tmp_path / "alpha" / "borealis") == _files(tmp_path / "bravo" / "borealis")
    assert _files(tmp_path / "bravo" / "cascade") == _files(tmp_path / "charlie" / "cascade")


def test_cli_bad_input_is_one_line(tmp_path: Path) -> None:
    proc = run("fixtures", "create", tmp_path, "--set", "zulu", check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "lanspread: unknown fixture set 'zulu'; choose one of alpha, bravo, charlie"
    ]
    proc = run("fixtures", "create", tmp_path, "--set", "alpha", "--size", "lots", check=False)
    assert proc.returncode == 2 and proc.stderr.startswith("lanspread: --size")


def test_cli_inspect_fixture_game(tmp_path: Path) -> None:
    run("fixtures", "create", tmp_path, "--set", "bravo", "--format", "fixture")
    proc = run("inspect", tmp_path / "cascade", "--provider", "fixture", "--json")
    data = json.loads(proc.stdout)
    assert data["provider"] == "fixture"
    assert data["probe"]["ok"] and data["probe"]["volumes"] == ["cascade.eti", "cascade_dlc1.eti"]
    archives = sorted((tmp_path / "cascade").glob("*.eti"))
    assert data["entries"] == [e.to_json() for e in FixtureProvider().entries(archives)]
    assert data["entries"][-1]["path"] == "game/levels/dlc1/intro.vid"
    # A RAR game is declined by the fixture provider with its reason.
    rar_root = tmp_path / "rar"
    run("fixtures", "create", rar_root, "--set", "alpha")
    proc = run("inspect", rar_root / "aurora", "--provider", "fixture", check=False)
    assert proc.returncode == 1
    assert "aurora.eti is not a fixture archive" in proc.stderr
