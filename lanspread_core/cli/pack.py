"""``lanspread pack``: turn an installed game folder into a game root, and catalog it.

The work is :mod:`lanspread_core.install.packing` (staging, then rename) and
:mod:`lanspread_core.install.packplan` (what goes into which archive); the
packer comes from a plugin record, ``zip`` by default.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType

import click

from lanspread_core.archive.packer import Packer
from lanspread_core.cli.common import emit_json, games_dir_option, progress_bar, registry_of
from lanspread_core.cli.settings import default_catalog
from lanspread_core.errors import LanspreadError, PluginError, UsageError, did_you_mean
from lanspread_core.frontends.vocabulary import plural, rate, size
from lanspread_core.install.packing import PackJob, version_line
from lanspread_core.install.packplan import plan_pack
from lanspread_core.library.catalog import ENV_CATALOG, valid_game_id
from lanspread_core.library.catalogfile import (
    add_to_catalog,
    editable_catalog,
    entry_for_root,
    suggest_id,
)
from lanspread_core.library.layout import LOCAL
from lanspread_core.library.statedir import default_games_dir
from lanspread_core.library.versionini import parse_version
from lanspread_core.plugin.registry import Registry

DEFAULT_PACKER = "zip"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 1000, "m": 1000**2, "g": 1000**3, "t": 1000**4}


class PackCancelled(LanspreadError):
    exit_code = 130


def parse_size(text: str) -> int:
    """``4GB``, ``500 MB``, ``1GiB`` or plain bytes, as bytes; :class:`UsageError` otherwise."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"{text!r} is not a size; write it like 4GB, 500MB or 1GiB")
    unit = (match.group(2) or "").lower()
    factor = 1024 ** ("kmgt".index(unit[0]) + 1) if "i" in unit else _UNITS[unit[:1]]
    count = int(float(match.group(1)) * factor)
    if count <= 0:
        raise UsageError("the split size must be more than 0 bytes")
    return count


@contextmanager
def _term_as_interrupt() -> Iterator[None]:
    """``kill PID`` (SIGTERM) cleans up like Ctrl-C; only a kill -9 leaves the staging folder."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _game_id(game_id: str) -> str:
    if not valid_game_id(game_id):
        raise UsageError(
            f"{game_id!r} is not a game id (letters, digits, '.', '_', '-', starting with a"
            f" letter or digit); try --id {suggest_id(game_id)}"
        )
    return game_id


def _version(version: str) -> str:
    """``version`` as version.ini will name it, checked by reading it back the same way."""
    text = version.strip()
    printable = bool(text) and len(text) <= 64 and all(c.isprintable() for c in text)
    if not printable or parse_version(version_line(text)) != text:
        raise UsageError(f"{version!r} is not a version; give one like 1.0 or 2024-03-01")
    return text


def _packer(registry: Registry, name: str) -> tuple[Packer, str]:
    record = registry.packers.get(name)
    if record is None:
        installed = ", ".join(sorted(registry.packers)) or "none"
        raise UsageError(
            f"packer {name!r} is not installed{did_you_mean(name, registry.packers)}"
            f" (installed: {installed}); 'lanspread plugins' lists them"
        )
    packer: Packer = record.factory()
    return packer, record.format or name


def _default_name(source: Path, game_id: str) -> str:
    """The folder's own name, unless it is a game root's ``local/``: then the id."""
    folder = source.resolve().name
    return game_id if folder == LOCAL or not folder else folder


def _games_dir(games_dir: Path | None) -> Path:
    games = (games_dir or default_games_dir()).expanduser()
    if not games.is_dir():
        if games_dir is not None:
            raise UsageError(f"games directory {games} does not exist")
        games.mkdir(parents=True)
    return games


def _check_apart(source: Path, games: Path) -> None:
    src, dest = source.resolve(), games.resolve()
    if dest == src or dest.is_relative_to(src):
        raise UsageError(f"{source} holds the games directory {games}; pack the game's own folder")


@click.command()
@click.argument("source", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--id", "game_id", required=True, help="The game id: the root's folder name.")
@click.option("--version", "version", required=True, help="The version version.ini will name.")
@click.option(
    "--name", help="The name people see. [default: SOURCE's folder name, or the id for local/]"
)
@games_dir_option
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=ENV_CATALOG,
    show_envvar=True,
    help="The catalog file the game is added to. [default: <games dir>/catalog.json]",
)
@click.option(
    "--packer",
    "packer_name",
    default=DEFAULT_PACKER,
    show_default=True,
    help="The archive format, by packer name; 'lanspread plugins' lists them.",
)
@click.option(
    "--split-size",
    default="4GB",
    help="Start a new archive past this size (cut between files; a bigger file"
    " gets an archive of its own).",
    show_default=True,
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_context
def pack(
    ctx: click.Context,
    source: Path,
    game_id: str,
    version: str,
    name: str | None,
    games_dir: Path | None,
    catalog: Path | None,
    packer_name: str,
    split_size: str,
    as_json: bool,
) -> None:
    """Turn an installed game folder SOURCE into a game root others can download.

    Writes <games dir>/ID/ with the folder's files in archives (ID.eti, or
    ID.part001.eti ... for a big game) and version.ini, then adds the game to
    the catalog. It is built in a hidden staging folder and renamed into place
    at the end, so Ctrl-C or a crash never leaves half a game; an existing
    game folder is never replaced. Symbolic links are refused, not followed.

    Example: lanspread pack "/mnt/c/Games/Half Life" --id half-life --version 1.1
    """
    game_id, version, volume = _game_id(game_id), _version(version), parse_size(split_size)
    games = _games_dir(games_dir)
    _check_apart(source, games)
    catalog_path = default_catalog(catalog, games)
    editable_catalog(catalog_path)  # refuse now, not after the packing, if it is unusable
    registry = registry_of(ctx)
    packer, fmt = _packer(registry, packer_name)
    title = name or _default_name(source, game_id)
    started = time.monotonic()
    try:
        with _term_as_interrupt(), PackJob(games, game_id) as job:
            for note in job.swept:
                click.echo(f"lanspread: recovered: {note}", err=True)
            plan = plan_pack(source, volume)
            job.check_space(plan)
            done = 0
            with progress_bar(f"pack {game_id}") as update:

                def progress(n: int) -> None:
                    nonlocal done
                    done += n
                    update(done, plan.total)

                try:
                    job.write(plan, packer, progress)
                except LanspreadError:
                    raise
                except Exception as exc:  # a plugin's packer: its failure is one sentence
                    raise PluginError(f"packer {packer_name!r} failed: {exc}") from exc
            elapsed = time.monotonic() - started
            provider = job.verify(plan, registry)
            job.seal(version)
            entry = entry_for_root(job.root, game_id, title)
            root = job.promote()
    except KeyboardInterrupt:
        raise PackCancelled(f"pack of {game_id} cancelled; nothing was made") from None
    try:
        add_to_catalog(catalog_path, entry)
    except LanspreadError as exc:
        raise LanspreadError(
            f"packed {root}, but the catalog was not updated ({exc});"
            f" add it with 'lanspread catalog add {root}'"
        ) from exc
    archives = [p.name for p in job.archives]
    stored = sum((root / a).stat().st_size for a in archives)
    result = {
        "id": game_id,
        "name": title,
        "version": version,
        "root": str(root),
        "archives": archives,
        "files": plan.files,
        "size": plan.total,
        "archive_size": stored,
        "packer": packer_name,
        "provider": provider,
        "catalog": str(catalog_path),
        "seconds": round(elapsed, 3),
    }
    if as_json:
        emit_json(result)
        return
    speed = rate(plan.total / elapsed) if elapsed > 0 else "-"
    click.echo(
        f"packed {game_id} {version}: {plural(plan.files, 'file')}, {size(plan.total)}"
        f" in {plural(len(archives), 'archive')} of {size(stored)}, {fmt}, at {speed};"
        f" provider {provider} reads them"
    )
    click.echo(f"added {game_id} to the catalog {catalog_path}")
