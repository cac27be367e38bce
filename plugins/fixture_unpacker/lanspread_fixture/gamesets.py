"""Deterministic fixture games and the sets that group them.

Why it exists: tests and benchmarks need several peers holding *overlapping*
game libraries whose files are byte-identical on every peer, without copying
gigabytes around. Each peer runs ``create_set`` for its set and gets the same
bytes for every game it shares with another peer.

Sets (``alpha`` and ``bravo`` share ``borealis``; ``bravo`` and ``charlie``
share ``cascade``; ``alpha`` and ``charlie`` share nothing)::

    alpha   = aurora, borealis
    bravo   = borealis, cascade, ember
    charlie = cascade, dunes

A game's bytes depend only on its id, its member paths and the requested
size, never on the set it was created through. File contents are BLAKE3 XOF
output seeded by ``game id + path`` (incompressible, ~8 GB/s, seekable, so
generation streams in 1 MiB blocks and never holds a file in memory); a few
small text files carry fixed text naming the game.

A game root is written as ``<dest>/<id>/`` holding its ``*.eti`` archives and
then, last, ``version.ini`` (a single line: the version). The sentinel is
removed before and written after the archives, so an interrupted create never
leaves a root that looks downloaded.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import blake3

from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.library.layout import ARCHIVE_SUFFIX, SENTINEL
from lanspread_fixture.fixtureformat import FixtureWriter
from lanspread_fixture.rarwriter import RarWriter

#: Default total unpacked size of one game, in bytes.
DEFAULT_SIZE = 256 * 1024
CHUNK = 1 << 20
FORMATS = ("rar", "fixture")
_SEED_PREFIX = b"lanspread-fixture/v1\x00"


@dataclass(frozen=True)
class Member:
    """One archive member.

    :param kind: ``dir``; ``random`` (seeded bytes, a ``weight`` share of the
        game's size); ``text`` (fixed text, see :func:`_text`); ``empty``.
    """

    path: str
    kind: str = "random"
    weight: int = 0


@dataclass(frozen=True)
class ArchiveSpec:
    name: str
    members: tuple[Member, ...]


@dataclass(frozen=True)
class Game:
    id: str
    name: str
    version: str
    archives: tuple[ArchiveSpec, ...]

    def catalog_entry(self) -> dict[str, str]:
        return {"id": self.id, "name": self.name, "version": self.version}


def _d(path: str) -> Member:
    return Member(path, "dir")


def _r(path: str, weight: int) -> Member:
    return Member(path, "random", weight)


def _t(path: str) -> Member:
    return Member(path, "text")


def _e(path: str) -> Member:
    return Member(path, "empty")


GAMES: dict[str, Game] = {
    g.id: g
    for g in (
        Game(
            "aurora",
            "Aurora Assault",
            "1.0",
            (
                ArchiveSpec(
                    "aurora.eti",
                    (
                        _t("readme.txt"),
                        _d("bin"),
                        _r("bin/aurora.x86_64", 3),
                        _d("data"),
                        _d("data/maps"),
                        _r("data/maps/level01.map", 2),
                        _r("data/maps/level02.map", 2),
                        _d("data/textures"),
                        _r("data/textures/sky.tex", 3),
                        _e("data/empty.cfg"),
                        _d("data/saves"),
                    ),
                ),
            ),
        ),
        Game(
            "borealis",
            "Borealis Drift",
            "2.1.0",
            (
                ArchiveSpec(
                    "borealis-base.eti",
                    (
                        _t("readme.txt"),
                        _d("bin"),
                        _r("bin/borealis", 4),
                        _d("data"),
                        _d("data/tracks"),
                        _r("data/tracks/north.trk", 3),
                        _r("data/tracks/south.trk", 3),
                    ),
                ),
                ArchiveSpec(
                    "borealis-music.eti",
                    (
                        _d("data"),
                        _d("data/sound"),
                        _d("data/sound/music"),
                        _r("data/sound/music/theme.ogg", 4),
                        _r("data/sound/music/credits.ogg", 1),
                        _d("data/sound/sfx"),
                        _r("data/sound/sfx/engine.wav", 1),
                        _e("data/sound/sfx/silence.wav"),
                    ),
                ),
            ),
        ),
        Game(
            "cascade",
            "Cascade Tactics",
            "0.9.3",
            (
                ArchiveSpec(
                    "cascade.eti",
                    (
                        _d("game"),
                        _r("game/cascade.bin", 5),
                        _d("game/config"),
                        _t("game/config/defaults.ini"),
                        _d("game/levels"),
                        _d("game/levels/01"),
                        _r("game/levels/01/map.dat", 2),
                        _d("game/levels/02"),
                        _r("game/levels/02/map.dat", 2),
                        _d("game/logs"),
                        _e("game/logs/.keep"),
                    ),
                ),
                # "cascade.eti" < "cascade_dlc1.eti": '.' sorts before '_'.
                ArchiveSpec(
                    "cascade_dlc1.eti",
                    (
                        _d("game"),
                        _d("game/levels"),
                        _d("game/levels/dlc1"),
                        _r("game/levels/dlc1/map.dat", 2),
                        _r("game/levels/dlc1/intro.vid", 3),
                    ),
                ),
            ),
        ),
        Game(
            "dunes",
            "Dunes of Sol",
            "1.2",
            (
                ArchiveSpec(
                    "dunes.eti",
                    (
                        _d("Dunes"),
                        _r("Dunes/Dünen.exe", 4),
                        _d("Dunes/données"),
                        _r("Dunes/données/carte_été.map", 3),
                        _t("Dunes/données/日本語.txt"),
                        _e("Dunes/données/vide.dat"),
                        _d("Dunes/a"),
                        _d("Dunes/a/b"),
                        _d("Dunes/a/b/c"),
                        _d("Dunes/a/b/c/d"),
                        _r("Dunes/a/b/c/d/deep.bin", 1),
                    ),
                ),
            ),
        ),
        Game(
            "ember",
            "Ember League",
            "3.0",
            (
                ArchiveSpec(
                    "ember.eti",
                    (
                        _d("ember"),
                        _r("ember/ember.exe", 8),
                        _e("ember/empty.log"),
                        _d("ember/assets"),
                        *(_r(f"ember/assets/pack_{i:02d}.pak", 1) for i in range(48)),
                    ),
                ),
            ),
        ),
    )
}

SETS: dict[str, tuple[str, ...]] = {
    "alpha": ("aurora", "borealis"),
    "bravo": ("borealis", "cascade", "ember"),
    "charlie": ("cascade", "dunes"),
}


# -- contents -----------------------------------------------------------------


def _text(game: Game, path: str) -> bytes:
    """The fixed content of a ``text`` member (small, a few hundred bytes)."""
    return (
        f"{game.name} {game.version}\n"
        f"Lanspread fixture game '{game.id}', file {path}.\n"
        "Generated by lanspread-fixture; the other files hold seeded pseudo-random bytes.\n"
    ).encode()


def random_chunks(game_id: str, path: str, size: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """The seeded bytes of a ``random`` member, in blocks of at most ``chunk`` bytes.

    BLAKE3's extendable output is seekable, so each block is computed on its
    own and the same (game, path) always yields the same stream prefix.
    """
    hasher = blake3.blake3(_SEED_PREFIX + game_id.encode() + b"\x00" + path.encode())
    offset = 0
    while offset < size:
        n = min(chunk, size - offset)
        yield hasher.digest(n, seek=offset)
        offset += n


def member_sizes(game: Game, size: int) -> dict[str, int]:
    """How many bytes each file member gets so that the game totals ``size``.

    Text members have their fixed size; the rest of ``size`` is split among
    ``random`` members by weight, the remainder going to the heaviest one.
    The total is exactly ``size`` unless ``size`` is below the text bytes.
    """
    members = [m for a in game.archives for m in a.members]
    sizes: dict[str, int] = {}
    for m in members:
        if m.kind == "text":
            sizes[m.path] = len(_text(game, m.path))
        elif m.kind == "empty":
            sizes[m.path] = 0
    randoms = [m for m in members if m.kind == "random"]
    budget = max(0, size - sum(sizes.values()))
    total_weight = sum(m.weight for m in randoms)
    for m in randoms:
        sizes[m.path] = budget * m.weight // total_weight
    heaviest = max(randoms, key=lambda m: m.weight)
    sizes[heaviest.path] += budget - sum(sizes[m.path] for m in randoms)
    return sizes


def member_chunks(game: Game, member: Member, size: int) -> Iterator[bytes]:
    """The bytes of a file member of ``size`` bytes (see :func:`member_sizes`)."""
    if member.kind == "text":
        yield _text(game, member.path)
    elif member.kind == "random":
        yield from random_chunks(game.id, member.path, size)


# -- writing ------------------------------------------------------------------


class _Writer(Protocol):
    def add_dir(self, name: str) -> None: ...

    def add_file(self, name: str, data: bytes) -> None: ...

    def add_file_from(self, name: str, size: int, chunks: Iterator[bytes]) -> None: ...


def _write_archive(
    path: Path, game: Game, spec: ArchiveSpec, sizes: dict[str, int], fmt: str
) -> None:
    """Write one archive to a temp name, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp")
    writer: RarWriter | FixtureWriter = RarWriter(tmp) if fmt == "rar" else FixtureWriter(tmp)
    with writer as w:
        out: _Writer = w
        for m in spec.members:
            if m.kind == "dir":
                out.add_dir(m.path)
            elif m.kind == "empty":
                out.add_file(m.path, b"")
            else:
                out.add_file_from(m.path, sizes[m.path], member_chunks(game, m, sizes[m.path]))
    os.replace(tmp, path)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_game(root: Path, game: Game, size: int = DEFAULT_SIZE, fmt: str = "rar") -> None:
    """Create or recreate one game root: archives first, ``version.ini`` last.

    Root-level ``*.eti`` files that are not part of the game are deleted,
    because every ``*.eti`` in a root is part of its archive set.
    """
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root} exists and is not a folder")
    root.mkdir(exist_ok=True)
    (root / SENTINEL).unlink(missing_ok=True)
    wanted = {a.name for a in game.archives}
    for stale in root.iterdir():
        if stale.suffix.lower() == ARCHIVE_SUFFIX and stale.name not in wanted and stale.is_file():
            stale.unlink()
    sizes = member_sizes(game, size)
    for spec in game.archives:
        _write_archive(root / spec.name, game, spec, sizes, fmt)
    _atomic_write(root / SENTINEL, f"{game.version}\n".encode())


def merge_catalog(catalog: Path, games: Sequence[Game]) -> None:
    """Add or update ``games`` in the JSON catalog, keeping everything else.

    Entries are matched by id; an existing entry keeps its position and any
    extra keys except ``hashes``: the files were just regenerated (perhaps at
    another size), so trusted hashes recorded for the old ones would lie. The
    file is replaced atomically (temp file + rename), so a reader never sees
    half a catalog.
    """
    data: dict[str, Any] = {"games": []}
    if catalog.exists():
        try:
            data = json.loads(catalog.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"catalog {catalog} is not readable JSON: {exc}") from exc
        if not isinstance(data, dict) or not isinstance(data.setdefault("games", []), list):
            raise UsageError(f'catalog {catalog} must be a JSON object with a "games" list')
    entries: list[Any] = data["games"]
    by_id = {e.get("id"): e for e in entries if isinstance(e, dict)}
    for game in games:
        if game.id in by_id:
            by_id[game.id].pop("hashes", None)
            by_id[game.id].update(game.catalog_entry())
        else:
            entry = game.catalog_entry()
            entries.append(entry)
            by_id[game.id] = entry
    catalog.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    _atomic_write(catalog, text.encode("utf-8"))


def create_set(
    dest: Path,
    set_name: str,
    size: int | None = None,
    catalog: Path | None = None,
    fmt: str = "rar",
) -> list[str]:
    """Create every game of ``set_name`` under ``dest`` and return their ids.

    :param size: total unpacked bytes per game (default :data:`DEFAULT_SIZE`).
    :param catalog: a JSON catalog to create or merge the games into.
    :param fmt: ``rar`` (stored RAR5, what real games use) or ``fixture``.
    :raises UsageError: unknown set or format, bad size, unusable ``dest``.
    """
    if set_name not in SETS:
        raise UsageError(f"unknown fixture set {set_name!r}; choose one of {', '.join(SETS)}")
    if fmt not in FORMATS:
        raise UsageError(f"unknown fixture format {fmt!r}; choose one of {', '.join(FORMATS)}")
    size = DEFAULT_SIZE if size is None else size
    if size < 0:
        raise UsageError(f"--size must be 0 or more bytes, not {size}")
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise UsageError(f"{dest} exists and is not a folder")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {dest}: {exc.strerror}") from exc
    if not os.access(dest, os.W_OK | os.X_OK):
        raise UsageError(f"{dest} is not writable")
    games = [GAMES[gid] for gid in SETS[set_name]]
    try:
        for game in games:
            write_game(dest / game.id, game, size, fmt)
        if catalog is not None:
            merge_catalog(Path(catalog), games)
    except OSError as exc:
        raise LanspreadError(f"writing fixture set {set_name!r} failed: {exc}") from exc
    return [g.id for g in games]


def describe_sets() -> list[dict[str, Any]]:
    """The sets and their games as JSON-ready data (for ``fixtures list``)."""
    return [
        {
            "name": name,
            "games": [
                {**GAMES[gid].catalog_entry(), "archives": [a.name for a in GAMES[gid].archives]}
                for gid in ids
            ],
        }
        for name, ids in SETS.items()
    ]
