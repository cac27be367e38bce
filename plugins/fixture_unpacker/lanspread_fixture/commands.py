"""``lanspread fixtures ...``: make fixture game sets from the command line.

Why: benchmarks and multi-peer tests start each peer from a shell script;
``lanspread fixtures create DIR --set bravo --size 1GiB`` gives every peer its
library (identical bytes for shared games) without shipping any files.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import click

from lanspread_core.cli.main import emit_json
from lanspread_core.errors import UsageError
from lanspread_fixture.gamesets import DEFAULT_SIZE, FORMATS, GAMES, SETS, create_set, describe_sets

_SIZE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """Bytes from ``123``, ``300K``, ``512MiB``, ``2G`` (units are powers of 1024)."""
    match = _SIZE.match(text)
    if not match:
        raise UsageError(f"--size {text!r} is not a size in bytes (e.g. 300000, 512MiB, 2GiB)")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


@click.group()
def fixtures() -> None:
    """Create deterministic fixture games for tests and benchmarks.

    Sets overlap: alpha and bravo share a game, bravo and charlie share
    another. The same set and size always give byte-identical files.

    Example: lanspread fixtures create ~/games --set alpha --catalog ~/games/catalog.json
    """


@fixtures.command()
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@click.option("--set", "set_name", required=True, help=f"One of: {', '.join(SETS)}.")
@click.option(
    "--size",
    default=str(DEFAULT_SIZE),
    show_default=True,
    help="Approximate total unpacked bytes per game; K/M/G suffixes are powers of 1024.",
)
@click.option(
    "--catalog",
    type=click.Path(dir_okay=False, path_type=Path),
    help="JSON catalog to create or merge the games into (by id).",
)
@click.option(
    "--format",
    "fmt",
    default="rar",
    show_default=True,
    help=f"Archive format: {' or '.join(FORMATS)}.",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def create(
    dest: Path, set_name: str, size: str, catalog: Path | None, fmt: str, as_json: bool
) -> None:
    """Create the game roots of a fixture set under DEST.

    Each game becomes DEST/<id>/ with its *.eti archives and version.ini.

    Example: lanspread fixtures create ~/games --set bravo --size 1GiB --catalog catalog.json
    """
    nbytes = parse_size(size)
    started = time.perf_counter()
    ids = create_set(dest, set_name, nbytes, catalog, fmt)
    seconds = time.perf_counter() - started
    if as_json:
        emit_json(
            {
                "set": set_name,
                "dest": str(dest),
                "format": fmt,
                "size": nbytes,
                "games": [GAMES[i].catalog_entry() for i in ids],
                "seconds": round(seconds, 3),
            }
        )
        return
    for gid in ids:
        game = GAMES[gid]
        click.echo(f"created {gid:<10} {game.name} {game.version}  ({dest / gid})")
    if catalog is not None:
        click.echo(f"catalog {catalog} updated")


@fixtures.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def list_sets(as_json: bool) -> None:
    """Name the fixture sets and their games.

    Example: lanspread fixtures list --json
    """
    sets = describe_sets()
    if as_json:
        emit_json({"sets": sets, "formats": list(FORMATS), "default_size": DEFAULT_SIZE})
        return
    for s in sets:
        games = ", ".join(f"{g['id']} ({g['name']} {g['version']})" for g in s["games"])
        click.echo(f"{s['name']:<8} {games}")
