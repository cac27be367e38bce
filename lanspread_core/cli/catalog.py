"""``lanspread catalog``: make and edit the catalog from the game roots on disk.

``add`` and ``scan`` read each root's ``version.ini`` and hash its archives
(the manifest peers agree on), and record name, version, size and the
manifest hash as trusted. Nothing is skipped silently: a folder whose name is
not a game id, or that has no ``version.ini``, gets one line saying what to
do. Folders are renamed only after a yes, or with ``--yes``.

Which catalog: ``--catalog``, ``LANSPREAD_CATALOG``, the ``catalog`` setting,
else ``<games dir>/catalog.json``, the file ``lanspread run`` then uses too.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import click

from lanspread_core.cli.common import (
    LanspreadGroup,
    emit_json,
    games_dir_option,
    progress_bar,
    provider_option,
    registry_of,
)
from lanspread_core.cli.settings import default_catalog
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.frontends.vocabulary import plural, size
from lanspread_core.library import layout
from lanspread_core.library.catalog import (
    ENV_CATALOG,
    Catalog,
    CatalogError,
    CatalogGame,
    load_catalog,
    valid_game_id,
)
from lanspread_core.library.catalogfile import (
    editable_catalog,
    entry_for_root,
    remove_from_catalog,
    save_catalog,
    suggest_id,
)
from lanspread_core.library.manifest import chunk_size_for
from lanspread_core.library.statedir import ENV_GAMES_DIR, default_games_dir
from lanspread_core.library.versionini import VersionFileError

F = TypeVar("F", bound=Callable[..., Any])

#: while hashing many games, the catalog is saved at most this often (seconds)
SAVE_EVERY = 10.0
#: without a terminal (no bar), a game at least this big gets a line before its hash
PLAIN_PROGRESS = 1_000_000_000
#: what to do about a folder without ``version.ini``
NO_VERSION = (
    "{folder} has no version.ini: add one naming its version (a line like '1.0'),"
    " or turn an installed game into a game root with 'lanspread pack'"
)


def _catalog_option(func: F) -> F:
    return click.option(
        "--catalog",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=ENV_CATALOG,
        show_envvar=True,
        help="The catalog file to edit. [default: <games dir>/catalog.json]",
    )(func)


@click.group(cls=LanspreadGroup)
def catalog() -> None:
    """Make and edit the catalog: which games you share, their names and versions.

    \b
    Start with:  lanspread catalog scan ~/games
    Then share:  lanspread run --games-dir ~/games
    """


@catalog.command()
@_catalog_option
@games_dir_option
def init(catalog: Path | None, games_dir: Path | None) -> None:
    """Make an empty catalog (an existing one is left alone).

    Example: lanspread catalog init --games-dir ~/games
    """
    path = default_catalog(catalog, games_dir).absolute()
    if path.exists():
        raise UsageError(f"catalog {path} already exists; 'lanspread catalog show' lists its games")
    _need_folder(path)
    save_catalog(path, Catalog())
    click.echo(f"made an empty catalog {path}; 'lanspread catalog scan' fills it")


@catalog.command()
@click.argument(
    "folders",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--id", "game_id", help="The game id (renames the folder to it). [default: folder name]"
)
@click.option("--name", help="The name people see. [default: the id]")
@click.option("--yes", is_flag=True, help="Rename a folder to its --id without asking.")
@click.option(
    "--files",
    is_flag=True,
    help="Also record the hash of every file the archives unpack to (streamed, nothing"
    " extracted), so installs and stream-installs check each file.",
)
@provider_option
@_catalog_option
@games_dir_option
@click.pass_context
def add(
    ctx: click.Context,
    folders: tuple[Path, ...],
    game_id: str | None,
    name: str | None,
    yes: bool,
    files: bool,
    provider: str,
    catalog: Path | None,
    games_dir: Path | None,
) -> None:
    """Add game roots to the catalog, or refresh their entries.

    Each FOLDER is a game root (archives plus version.ini), normally
    <games dir>/<id>. Its version.ini is read and its archives hashed.

    With --files the archives are also streamed through a provider and
    every file's hash recorded (hashes.files in the catalog).

    Example: lanspread catalog add ~/games/quake --name Quake --files
    """
    if len(folders) > 1 and (game_id or name):
        raise UsageError("--id and --name name one game; give one FOLDER with them")
    path = default_catalog(catalog, games_dir).absolute()
    _need_folder(path)
    games = (games_dir or default_games_dir()).expanduser()
    failed = 0
    with _Edits(path) as current:
        for folder in folders:
            gid = game_id or folder.name
            if not valid_game_id(gid) or layout.is_reserved(gid):
                click.echo(
                    f"{gid!r} is not a valid game id; add it with --id {suggest_id(gid)}", err=True
                )
                failed += 1
                continue
            title = name or _title(current.get(gid), gid if gid == folder.name else folder.name)
            if gid != folder.name:
                folder = _rename(folder, gid, yes)
                if folder.name != gid:
                    failed += 1
                    continue
            if folder.resolve().parent != games.resolve():
                click.echo(
                    f"note: {folder} is not in the games dir {games}; peers are served it"
                    f" only from {games / gid}",
                    err=True,
                )
            game = _entry(folder, gid, title)
            if game is None:
                failed += 1
                continue
            kept = _keep(current.get(gid), game)
            if files:
                hashed = _file_hashes(ctx, folder, gid, provider)
                if hashed is None:
                    failed += 1
                    continue
                kept = replace(kept, files=hashed)
            current.put(kept)
            click.echo(f"added {gid} {game.version} ({size(game.size)}) to {current.path}")
    if failed:
        raise CatalogError(f"{plural(failed, 'folder')} not added; see the lines above")


@catalog.command()
@click.argument(
    "games_dir",
    required=False,
    envvar=ENV_GAMES_DIR,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
)
@click.option(
    "--rename",
    is_flag=True,
    help="Rename folders whose names are not game ids to the suggested ids (asks first).",
)
@click.option("--yes", is_flag=True, help="With --rename: rename without asking.")
@click.option(
    "--files",
    is_flag=True,
    help="Also record the hash of every file each game's archives unpack to (as for add).",
)
@provider_option
@_catalog_option
@click.pass_context
def scan(
    ctx: click.Context,
    games_dir: Path | None,
    rename: bool,
    yes: bool,
    files: bool,
    provider: str,
    catalog: Path | None,
) -> None:
    """Add every game root in GAMES_DIR to the catalog, or refresh its entry.

    A folder whose name is not a game id gets a suggested id; --rename
    renames it (after a yes, or with --yes). Entries whose folder is gone are
    kept and named. With --files every file's hash is recorded too (for a
    game already listed without them as well). [GAMES_DIR default: the games
    dir setting]

    Example: lanspread catalog scan ~/games --rename
    """
    games = (games_dir or default_games_dir()).expanduser()
    if not games.is_dir():
        raise UsageError(f"games directory {games} does not exist")
    path = default_catalog(catalog, games).absolute()
    _need_folder(path)
    hash_files = (lambda root, gid: _file_hashes(ctx, root, gid, provider)) if files else None
    with _Edits(path) as current:
        tally = _scan_into(current, games, rename, yes, hash_files)
    click.echo(f"catalog {path}: {tally}")


def _scan_into(
    current: _Edits,
    games: Path,
    rename: bool,
    yes: bool,
    hash_files: Callable[[Path, str], dict[str, str] | None] | None = None,
) -> _Tally:
    """``catalog scan``'s work: each folder added, refreshed or named with what to do;
    with ``hash_files``, every file's hash recorded too."""
    tally = _Tally()
    roots: dict[str, tuple[Path, str]] = {}
    renames: list[tuple[Path, str]] = []
    for folder in _folders(games):
        if valid_game_id(folder.name) and not layout.is_reserved(folder.name):
            roots[folder.name] = (folder, folder.name)
            continue
        suggested = suggest_id(folder.name)
        if rename:
            renames.append((folder, suggested))
            continue
        click.echo(
            f"{folder.name!r} is not a valid game id; suggested id: {suggested}. Accept it with"
            f" 'lanspread catalog scan {shlex.quote(str(games))} --rename' (renames the folder)",
            err=True,
        )
        tally.attention += 1
    for folder, gid, title in _do_renames(renames, roots, yes, tally):
        roots[gid] = (folder, title)
    for gid, (folder, title) in sorted(roots.items()):
        old = current.get(gid)
        game = _entry(folder, gid, _title(old, title))
        if game is None:
            tally.attention += 1
            continue
        same = (
            old is not None
            and old.hashes.get("manifest") == game.hashes.get("manifest")
            and (old.version, old.size) == (game.version, game.size)
        )
        if same and (hash_files is None or (old is not None and old.files)):
            tally.unchanged += 1
            continue
        kept = _keep(old, game)
        if hash_files is not None:
            hashed = hash_files(folder, gid)
            if hashed is None:
                tally.attention += 1
                continue
            kept = replace(kept, files=hashed)
        current.put(kept)
        if same:
            tally.updated += 1
            counted = plural(len(kept.files), "file")
            click.echo(f"updated {gid}: the hashes of its {counted} recorded")
        elif old is None:
            tally.added += 1
            click.echo(f"added {gid} {game.version} ({size(game.size)})")
        else:
            tally.updated += 1
            click.echo(f"updated {gid}: {old.version} -> {game.version} ({size(game.size)})")
    for gid in sorted(set(current.catalog.games) - set(roots)):
        click.echo(
            f"{gid} is in the catalog but not in {games}; kept"
            f" ('lanspread catalog remove {gid}' drops it)",
            err=True,
        )
    return tally


@catalog.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@_catalog_option
@games_dir_option
def show(as_json: bool, catalog: Path | None, games_dir: Path | None) -> None:
    """List the catalog's games: id, version, size, trusted hash and name.

    Example: lanspread catalog show --json
    """
    path = default_catalog(catalog, games_dir).absolute()
    if not path.is_file():
        raise CatalogError(
            f"there is no catalog {path}; make one with 'lanspread catalog scan GAMES_DIR'"
        )
    cat = load_catalog(path)
    if as_json:
        emit_json({"path": str(path), "warnings": cat.warnings, **cat.to_json()})
        return
    for warning in cat.warnings:
        click.echo(f"lanspread: warning: {warning}", err=True)
    click.echo(f"catalog {path}: {plural(len(cat.games), 'game')}")
    if cat.games:
        click.echo(f"  {'id':<20} {'version':<10} {'size':>10}  {'trusted':<7}  name")
    for gid in sorted(cat.games):
        g = cat.games[gid]
        trusted = "yes" if g.hashes.get("manifest") else "no"
        click.echo(f"  {gid:<20} {g.version:<10} {size(g.size):>10}  {trusted:<7}  {g.name}")


@catalog.command()
@click.argument("game_id", metavar="ID")
@_catalog_option
@games_dir_option
def remove(game_id: str, catalog: Path | None, games_dir: Path | None) -> None:
    """Remove game ID from the catalog; its folder stays as it is.

    Example: lanspread catalog remove quake
    """
    path = default_catalog(catalog, games_dir).absolute()
    remove_from_catalog(path, game_id)
    click.echo(f"removed {game_id} from {path}; no file of the game was touched")


class _Edits:
    """One catalog being edited: saved every :data:`SAVE_EVERY` seconds while
    games are hashed, and at the end, also after Ctrl-C (what was hashed stays).

    Saving after every game would rewrite the whole file per game: 37 s for
    2,000 small games, against well under one for one save at the end.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.catalog = editable_catalog(path)
        self._dirty = False
        self._saved = time.monotonic()

    def get(self, game_id: str) -> CatalogGame | None:
        return self.catalog.get(game_id)

    def put(self, game: CatalogGame) -> None:
        self.catalog.games[game.id] = game
        self._dirty = True
        if time.monotonic() - self._saved >= SAVE_EVERY:
            self.flush()

    def flush(self) -> None:
        if self._dirty:
            save_catalog(self.path, self.catalog)
            self._dirty = False
        self._saved = time.monotonic()

    def __enter__(self) -> _Edits:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        if kind is None:
            self.flush()
            return
        with contextlib.suppress(LanspreadError):  # the first error is the one to tell
            self.flush()


@dataclass
class _Tally:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    attention: int = 0

    def __str__(self) -> str:
        return (
            f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged,"
            f" {plural(self.attention, 'folder')} to look at"
        )


def _need_folder(path: Path) -> None:
    if not path.parent.is_dir():
        raise UsageError(f"the folder {path.parent} for the catalog does not exist")


def _folders(games: Path) -> list[Path]:
    """Candidate game roots: folders (or links to one, as the library takes them), not hidden."""
    return sorted(p for p in games.iterdir() if p.is_dir() and not p.name.startswith("."))


def _title(old: CatalogGame | None, fallback: str) -> str:
    """A game's name: what the catalog says already (a person may have edited it)."""
    return old.name if old is not None else fallback


def _keep(old: CatalogGame | None, game: CatalogGame) -> CatalogGame:
    """``game``, with what only a person or another command added to ``old``.

    Per-file hashes stay only while the manifest is the same: for other
    archives they would be wrong.
    """
    if old is None:
        return game
    same = old.hashes.get("manifest") == game.hashes.get("manifest")
    hashes = {**old.hashes, **game.hashes}
    return replace(game, hashes=hashes, files=old.files if same else {}, extra=old.extra)


def _agreed(question: str, yes: bool) -> bool:
    """``--yes``, or a yes typed at a terminal; a script must say --yes."""
    if yes:
        return True
    if not sys.stdin.isatty():
        click.echo("renaming a folder needs a yes: add --yes to rename without asking", err=True)
        return False
    return click.confirm(question, default=False, err=True)


def _rename(folder: Path, gid: str, yes: bool) -> Path:
    """Rename ``folder`` to ``gid`` beside it after a yes; the folder as it then is."""
    target = folder.with_name(gid)
    if target.exists():
        click.echo(f"cannot rename {folder} to {target}: that already exists", err=True)
        return folder
    if not _agreed(f"rename {folder} to {target}?", yes):
        click.echo(f"{folder} left as it is", err=True)
        return folder
    try:
        folder.rename(target)
    except OSError as exc:
        click.echo(f"cannot rename {folder} to {target}: {exc.strerror}", err=True)
        return folder
    return target


def _do_renames(
    renames: list[tuple[Path, str]], taken: dict[str, Any], yes: bool, tally: _Tally
) -> list[tuple[Path, str, str]]:
    """Rename folders to their suggested ids, all after one yes; (folder, id, old name)."""
    todo: list[tuple[Path, str]] = []
    for folder, gid in renames:
        if gid in taken or folder.with_name(gid).exists() or gid in {g for _, g in todo}:
            click.echo(
                f"{folder.name!r} is not a valid game id and {gid!r} is taken; add it with"
                f" 'lanspread catalog add {shlex.quote(str(folder))} --id ANOTHER-ID'",
                err=True,
            )
            tally.attention += 1
        else:
            todo.append((folder, gid))
    if not todo:
        return []
    for folder, gid in todo:
        click.echo(f"rename {folder.name!r} to {gid}", err=True)
    these = "this folder" if len(todo) == 1 else f"these {len(todo)} folders"
    if not _agreed(f"rename {these}?", yes):
        click.echo("no folder renamed", err=True)
        tally.attention += len(todo)
        return []
    done: list[tuple[Path, str, str]] = []
    for folder, gid in todo:
        try:
            folder.rename(folder.with_name(gid))
        except OSError as exc:
            click.echo(f"cannot rename {folder}: {exc.strerror}", err=True)
            tally.attention += 1
            continue
        done.append((folder.with_name(gid), gid, folder.name))
    return done


def _entry(root: Path, gid: str, title: str) -> CatalogGame | None:
    """The entry for ``root``, hashing with a progress bar; None (and a line) on a problem."""
    if not layout.is_downloaded(root):
        click.echo(NO_VERSION.format(folder=root), err=True)
        return None
    total = sum(os.lstat(p).st_size for p in layout.download_files(root))
    if total >= PLAIN_PROGRESS and not sys.stderr.isatty():  # a log has no bar to watch
        click.echo(f"hashing {gid} ({size(total)})", err=True)
    calls, chunk = 0, chunk_size_for(total)  # the chunk size the manifest will take
    with progress_bar(f"hashing {gid}") as update:

        def tick() -> None:
            # build_manifest calls this once before each chunk it reads
            nonlocal calls
            calls += 1
            update(min(calls * chunk, total), total)

        try:
            return entry_for_root(root, gid, title, check=tick)
        except VersionFileError as exc:
            click.echo(f"{exc}; fix it or write a line like '1.0'", err=True)
        except LanspreadError as exc:
            click.echo(f"{root} cannot be shared: {exc}", err=True)
        except OSError as exc:
            click.echo(f"cannot read {exc.filename or root}: {exc.strerror}", err=True)
    return None


def _file_hashes(ctx: click.Context, root: Path, gid: str, provider: str) -> dict[str, str] | None:
    """Every file's hash, streamed through a provider with a progress bar; None
    (and a line) when no provider reads the archives."""
    from lanspread_core.archive.cancel import WatchedSink
    from lanspread_core.archive.filehashes import tree_hashes
    from lanspread_core.archive.listing import check_entries
    from lanspread_core.plugin.selection import choose

    archives = layout.root_archives(root)
    try:
        choice = choose(registry_of(ctx), provider, archives)
        listing = check_entries(choice.provider.entries(archives))
        done = 0
        with progress_bar(f"hashing the files of {gid}") as update:

            def on_bytes(n: int) -> None:
                nonlocal done
                done += n
                update(done, listing.total)

            return tree_hashes(
                choice.provider, archives, listing, lambda s: WatchedSink(s, on_bytes=on_bytes)
            )
    except LanspreadError as exc:
        click.echo(f"cannot hash the files of {root}: {exc}", err=True)
    return None


CATALOG_COMMANDS = (catalog,)
