"""The stored-mode RAR5 writer, checked against three independent readers.

unrar (the official library, via unrar2-cffi), libarchive and rarfile must
each read back every name, size, CRC32 and byte the writer put in. If any of
them disagrees, fixture games would test the providers against a wrong RAR.
"""

from __future__ import annotations

import os
import random
import zlib
from pathlib import Path

import pytest
import rarfile
from unrar.cffi.unrarlib import FLAGS_RHDF_DIRECTORY, BadRarFile, RarArchive

from lanspread_fixture.rarwriter import SIGNATURE, RarWriter, vint

BIG = 1024 * 1024 * 3 + 12345  # > 1 MiB, not a multiple of any block size


def _chunks(data: bytes, sizes: tuple[int, ...] = (1, 4095, 65536, 1 << 20)) -> list[bytes]:
    """Split ``data`` unevenly, so streaming is exercised at odd boundaries."""
    out, pos, i = [], 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        out.append(data[pos : pos + n])
        pos += n
        i += 1
    return out


def _expected() -> dict[str, bytes | None]:
    """name -> bytes (files) or None (dirs), in archive order."""
    rng = random.Random(7)
    return {
        "data": None,
        "data/nested": None,
        "data/nested/deeper": None,
        "data/nested/deeper/small.txt": b"hello, rar\n",
        "data/big.bin": rng.randbytes(BIG),
        "empty.cfg": b"",
        "Dünen": None,
        "Dünen/carte_été.map": rng.randbytes(5000),
        "Dünen/日本語.txt": "こんにちは\n".encode(),
        "top.bin": rng.randbytes(1 << 20),
    }


def _write(
    path: Path, expected: dict[str, bytes | None], mtime: int | None = 1_700_000_000
) -> None:
    with RarWriter(path, mtime=mtime) as w:
        for name, data in expected.items():
            if data is None:
                w.add_dir(name)
            elif name == "data/big.bin":
                w.add_file_from(name, len(data), _chunks(data))
            elif name == "top.bin":
                w.add_file_from(name, len(data), [memoryview(data)])
            else:
                w.add_file(name, data)


@pytest.fixture(scope="module", params=[1_700_000_000, None], ids=["mtime", "no-mtime"])
def archive(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    expected = _expected()
    path = tmp_path_factory.mktemp("rar") / "test.eti"
    _write(path, expected, mtime=request.param)
    return path, expected


def test_vint() -> None:
    assert vint(0) == b"\x00"
    assert vint(127) == b"\x7f"
    assert vint(128) == b"\x80\x01"
    assert vint(300) == b"\xac\x02"
    assert vint(5 << 30) == bytes([0x80, 0x80, 0x80, 0x80, 0x14])
    with pytest.raises(ValueError):
        vint(-1)


def test_starts_with_rar5_signature(archive) -> None:
    path, _ = archive
    assert path.read_bytes()[:8] == SIGNATURE == b"Rar!\x1a\x07\x01\x00"


def test_unrar_library_reads_everything_in_one_pass(archive) -> None:
    path, expected = archive
    seen: dict[str, bytes | None] = {}
    with RarArchive.open_for_processing(path) as rar:
        for header in rar.iterate_headers():
            chunks: list[bytes] = []
            header.test(chunks.append)
            name = header.FileNameW
            if header.Flags & FLAGS_RHDF_DIRECTORY:
                seen[name] = None
                continue
            data = b"".join(chunks)
            assert header.UnpSize + (header.UnpSizeHigh << 32) == len(data)
            assert header.FileCRC == zlib.crc32(data), name
            assert header.Method == 0x30  # stored
            seen[name] = data
    assert list(seen) == list(expected)
    assert seen == expected


@pytest.mark.needs("libarchive")
def test_libarchive_reads_everything(archive) -> None:
    import libarchive

    path, expected = archive
    seen: dict[str, bytes | None] = {}
    with libarchive.file_reader(str(path)) as reader:
        for entry in reader:
            name = entry.pathname.rstrip("/")
            if entry.isdir:
                seen[name] = None
                continue
            assert entry.isfile
            data = b"".join(entry.get_blocks())
            assert entry.size == len(data)
            seen[name] = data
    assert list(seen) == list(expected)
    assert seen == expected


def test_rarfile_reads_names_sizes_crcs_and_bytes(archive) -> None:
    path, expected = archive
    with rarfile.RarFile(path) as rf:
        infos = rf.infolist()
        assert [i.filename.rstrip("/") for i in infos] == list(expected)
        assert not rf.needs_password()
        for info in infos:
            data = expected[info.filename.rstrip("/")]
            if data is None:
                assert info.is_dir()
                continue
            assert not info.is_dir()
            assert info.file_size == info.compress_size == len(data)
            assert zlib.crc32(data) == info.CRC
            assert rf.read(info) == data
        rf.testrar()


def test_data_crc_is_really_checked(tmp_path: Path) -> None:
    """Flip one data byte: unrar and rarfile must notice (the CRCs are real)."""
    path = tmp_path / "c.eti"
    data = bytes(range(256)) * 40
    with RarWriter(path) as w:
        w.add_file("f.bin", data)
    raw = bytearray(path.read_bytes())
    at = raw.index(data[:64]) + 100
    raw[at] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(BadRarFile), RarArchive.open_for_processing(path) as rar:
        for header in rar.iterate_headers():
            header.test()
    with rarfile.RarFile(path) as rf, pytest.raises(rarfile.BadRarFile):
        rf.read("f.bin")


def test_header_crc_is_really_checked(tmp_path: Path) -> None:
    """Flip a byte inside a file header's name: readers must refuse that header."""
    path = tmp_path / "h.eti"
    with RarWriter(path) as w:
        w.add_file("name-to-break.bin", b"x" * 100)
    with RarArchive.open_for_processing(path) as rar:
        assert len(list(rar.iterate_headers())) == 1
    raw = bytearray(path.read_bytes())
    raw[raw.index(b"name-to-break")] ^= 0x01
    path.write_bytes(bytes(raw))
    # unrar's header reader stops at the bad header (iterate_headers ends early).
    with RarArchive.open_for_processing(path) as rar:
        assert list(rar.iterate_headers()) == []
    with pytest.raises(rarfile.BadRarFile, match="CRC"):
        rarfile.RarFile(path, errors="strict")


def test_wrong_stream_length_fails_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "short.eti"
    with pytest.raises(ValueError, match="promised"), RarWriter(path) as w:
        w.add_file_from("f", 10, [b"12345"])
    assert not path.exists()
    with pytest.raises(ValueError, match="promised"), RarWriter(path) as w:
        w.add_file_from("f", 3, [b"12345"])
    assert not path.exists()


def test_output_is_deterministic(tmp_path: Path) -> None:
    expected = _expected()
    _write(tmp_path / "a.eti", expected)
    _write(tmp_path / "b.eti", expected)
    assert (tmp_path / "a.eti").read_bytes() == (tmp_path / "b.eti").read_bytes()


@pytest.mark.needs("libarchive")
def test_empty_archive_is_valid(tmp_path: Path) -> None:
    import libarchive

    path = tmp_path / "empty.eti"
    with RarWriter(path):
        pass
    with rarfile.RarFile(path) as rf:
        assert rf.infolist() == []
    with libarchive.file_reader(str(path)) as reader:
        assert list(reader) == []
    with RarArchive.open_for_processing(path) as rar:
        assert list(rar.iterate_headers()) == []
    assert os.path.getsize(path) < 32
