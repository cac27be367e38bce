"""Packing a game-like folder: speed and size per archive format, and how fast
the libarchive provider installs each.

The folder: 2,000 small files of 1-64 KiB (half text-like, half random) and
two big files (``LANSPREAD_BENCH_GIB`` GiB each, default 1): one random, one
half random and half loosely repetitive binary, like uncompressed textures
beside compressed ones. Every format packs the same items in the same order,
in one archive, writing through a 1 MiB block loop like the built-in packer;
each run ends with ``os.sync`` so the page cache does not flatter it. The
listing row is what every install, stream-install and pack's own check pays
before the first byte: a zip's central directory, or a whole pass through a
tar (decompressing all of a tar.zst).

Formats: stored zip (the built-in packer, and through ``lanspread pack`` end
to end: plan, write, check, hash for the catalog), zip at deflate level 1,
uncompressed tar, and tar with zstd level 1 when the ``zstandard`` package is
installed (libarchive reads all of them). No target: the rows are the figures
behind the choice in ``docs/decisions.md``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from lanspread_core.archive.listing import check_entries  # noqa: E402
from lanspread_core.archive.packer import PackItem  # noqa: E402
from lanspread_core.archive.protocol import EntryKind  # noqa: E402
from lanspread_core.archive.treewriter import unpack_via_stream  # noqa: E402
from lanspread_core.archive.zippacker import BLOCK, ZipPacker  # noqa: E402
from lanspread_core.install.packplan import plan_pack  # noqa: E402
from lanspread_core.plugin.registry import load_registry  # noqa: E402
from lanspread_core.plugin.selection import build_provider  # noqa: E402
from support.cli import LANSPREAD, _clean_env  # noqa: E402

GiB = 1 << 30
SCALE = float(os.environ.get("LANSPREAD_BENCH_GIB", "1"))
SMALL = 2000
MB = 1e6

Writer = Callable[[Sequence[PackItem], Path], None]


def make_folder(top: Path, big: int) -> None:
    rnd = random.Random(14)
    words = [
        bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz_") for _ in range(6)) for _ in range(400)
    ]
    for i in range(SMALL):
        folder = top / f"data{i % 40:02}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rnd.randint(1, 64) * 1024
        if i % 2:
            data = b" ".join(rnd.choice(words) for _ in range(size // 7 + 1))[:size]
        else:
            data = rnd.randbytes(size)
        (folder / f"asset{i:04}.dat").write_bytes(data)
    block = 1 << 20
    with open(top / "music.pak", "wb") as out:
        for _ in range(big // block):
            out.write(rnd.randbytes(block))
    with open(top / "textures.pak", "wb") as out:
        for n in range(big // block):
            if n % 2:
                out.write(rnd.randbytes(block))
            else:  # a few distinct 4 KiB tiles, shifted: repetitive, not trivially so
                tiles = [rnd.randbytes(4096) for _ in range(8)]
                out.write(b"".join(rnd.choice(tiles) for _ in range(block // 4096)))


def _copy(item: PackItem, out: Any) -> None:
    with open(item.source, "rb") as src:
        while block := src.read(BLOCK):
            out.write(block)


def zip_deflate1(items: Sequence[PackItem], target: Path) -> None:
    with zipfile.ZipFile(target, "x", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        for item in items:
            if item.kind is EntryKind.DIR:
                archive.mkdir(item.path)
                continue
            info = zipfile.ZipInfo(item.path)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.file_size = item.size
            with archive.open(info, "w") as out:
                _copy(item, out)


def _tar_into(items: Sequence[PackItem], out: Any) -> None:
    with tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, copybufsize=BLOCK
    ) as archive:
        for item in items:
            info = tarfile.TarInfo(item.path)
            if item.kind is EntryKind.DIR:
                info.type = tarfile.DIRTYPE
                archive.addfile(info)
            else:
                info.size = item.size
                with open(item.source, "rb") as src:
                    archive.addfile(info, src)


def tar_plain(items: Sequence[PackItem], target: Path) -> None:
    with open(target, "xb") as out:
        _tar_into(items, out)


def tar_zstd1(items: Sequence[PackItem], target: Path) -> None:
    import zstandard

    compressor = zstandard.ZstdCompressor(level=1, write_checksum=True)
    with open(target, "xb") as raw, compressor.stream_writer(raw, closefd=False) as out:
        _tar_into(items, out)


def formats() -> list[tuple[str, Writer]]:
    found: list[tuple[str, Writer]] = [
        ("zip stored (built-in)", lambda items, t: ZipPacker().write(items, t, lambda n: None)),
        ("zip deflate 1", zip_deflate1),
        ("tar", tar_plain),
    ]
    try:
        import zstandard  # noqa: F401
    except ImportError:
        print("bench pack: zstandard is not installed; no tar.zst row", file=sys.stderr)
    else:
        found.append(("tar.zst level 1", tar_zstd1))
    return found


def install(provider: Any, archive: Path, out: Path) -> None:
    """What ``lanspread install`` does with one archive: probe, list, stream to disk."""
    fresh = type(provider)()  # no listing cached from an earlier call
    assert fresh.probe([archive]).ok
    listing = check_entries(fresh.entries([archive]))
    unpack_via_stream(fresh, [archive], out, listing=listing)


def timed(work: Callable[[], object]) -> float:
    os.sync()
    started = time.perf_counter()
    work()
    os.sync()
    return time.perf_counter() - started


def run() -> list[dict]:
    rows: list[dict] = []
    provider = build_provider(load_registry(), "libarchive")
    with tempfile.TemporaryDirectory(prefix="lanspread-bench-pack-") as tmp:
        work = Path(tmp)
        source = work / "game"
        make_folder(source, int(GiB * SCALE))
        plan = plan_pack(source, split_size=1 << 62)
        items, total = plan.items, plan.total
        label = f"{SMALL} small files + 2 x {int(GiB * SCALE) >> 20} MiB, {total / MB:,.0f} MB"
        print(f"bench pack: {label}", file=sys.stderr)
        for name, write in formats():
            archive = work / "game.eti"
            pack_s = timed(lambda: write(items, archive))  # noqa: B023
            size = archive.stat().st_size
            # what every install, stream-install and pack's own check does first
            list_s = timed(lambda: provider.entries([archive]))  # noqa: B023
            out = work / "out"
            install_s = timed(lambda: install(provider, archive, out))  # noqa: B023
            rows += [
                {"name": f"{name}: pack", "value": total / pack_s / MB, "unit": "MB/s"},
                {"name": f"{name}: archive / folder size", "value": size / total, "unit": "ratio"},
                {"name": f"{name}: list entries (libarchive)", "value": list_s, "unit": "s"},
                {
                    "name": f"{name}: install, list + unpack (libarchive)",
                    "value": total / install_s / MB,
                    "unit": "MB/s",
                },
            ]
            archive.unlink()
            shutil.rmtree(out)
        games = work / "games"
        games.mkdir()
        command = [str(LANSPREAD), "pack", str(source), "--id", "game", "--version", "1"]
        command += ["--games-dir", str(games), "--json"]
        cli_s = timed(
            lambda: subprocess.run(command, check=True, capture_output=True, env=_clean_env({}))
        )
        # the catalog entry proves it finished
        assert json.loads((games / "catalog.json").read_text())["games"][0]["id"] == "game"
        rows.append(
            {
                "name": "lanspread pack, end to end (zip stored, checked, catalogued)",
                "value": total / cli_s / MB,
                "unit": "MB/s",
                "baseline": rows[0]["value"],
            }
        )
        rows.append({"name": f"folder: {label}", "value": total / MB, "unit": "MB"})
    return rows
