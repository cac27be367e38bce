"""Local commands that need no peer: scan, install, update, uninstall, remove-download."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lanspread_core.cli.client import via_running_peer
from lanspread_core.cli.common import (
    emit_json,
    library_options,
    progress_bar,
    provider_option,
    registry_of,
)
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.frontends.vocabulary import AVAILABILITY, at_stake, deletion, loss, plural, size
from lanspread_core.library.catalog import Catalog, load_catalog
from lanspread_core.library.statedir import StateDir, default_games_dir, locked
from lanspread_core.plugin.selection import AUTO

if TYPE_CHECKING:
    # the transactions (and the archive tree writer) load only for a command that installs
    from lanspread_core.install.transactions import Outcome, Transactions


@dataclass
class LocalContext:
    games_dir: Path
    state: StateDir
    catalog: Catalog
    transactions: Transactions
    #: what start-up recovery did, one sentence each
    recovered: list[str]


@contextmanager
def local_context(
    ctx: click.Context,
    games_dir: Path | None,
    catalog: Path | None,
    state_dir: Path | None,
    provider: str = "auto",
    holder: str = "lanspread",
    quiet_recovery: bool = False,
) -> Iterator[LocalContext]:
    """Open the games dir and state dir for one command and run start-up recovery
    (what it did goes to stderr, unless ``quiet_recovery``: the caller reports it)."""
    from lanspread_core.install.transactions import Transactions

    games = (games_dir or default_games_dir()).expanduser()
    if not games.is_dir():
        if games_dir is not None:
            raise UsageError(f"games directory {games} does not exist")
        games.mkdir(parents=True)
    cat = load_catalog(catalog)
    for warning in cat.warnings:
        click.echo(f"lanspread: warning: {warning}", err=True)
    state = StateDir(state_dir).ensure()
    with locked(state, holder):
        tx = Transactions(games, state, registry_of(ctx), provider=provider, catalog_ids=cat.games)
        recovered = tx.recover()
        for note in [] if quiet_recovery else recovered:
            click.echo(f"lanspread: recovered: {note}", err=True)
        yield LocalContext(games, state, cat, tx, recovered)


def _report(outcome: Outcome, as_json: bool) -> None:
    if as_json:
        emit_json(outcome.__dict__)
        return
    entries = plural(outcome.files, "entry", "entries")
    extra = f" with {outcome.provider} ({entries})" if outcome.provider else ""
    click.echo(f"{outcome.op}: {outcome.game_id} done{extra}")


@click.command()
@library_options
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def scan(
    ctx: click.Context,
    games_dir: Path | None,
    catalog: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """List the games in the games directory and what state each is in.

    Only new or changed game folders are hashed; the index is kept in the
    state directory.

    Example: lanspread scan --games-dir ~/games --catalog catalog.json --json
    """
    from lanspread_core.library.index import Library

    with (
        _peer_runs_hint("scan", "'lanspread games' lists the library it keeps up to date"),
        local_context(ctx, games_dir, catalog, state_dir, holder="lanspread scan") as lc,
    ):
        library = Library(lc.games_dir, lc.state, lc.catalog)
        library.refresh()
        games = library.games()
    if as_json:
        emit_json([g.to_json() for g in games])
        return
    if not games:
        click.echo(f"no games in {lc.games_dir}")
    else:
        click.echo(
            f"{'game':<20} {'version':<10} {'size':>12}  {'downloaded':<10} "
            f"{'installed':<9}  availability"
        )
    for g in games:
        state = f"error: {g.error}" if g.error else AVAILABILITY.get(g.availability, g.availability)
        click.echo(
            f"{g.id:<20} {g.local_version or '-':<10} {size(g.size):>12}  "
            f"{'yes' if g.downloaded else 'no':<10} {'yes' if g.installed else 'no':<9}  {state}"
        )
    if games and catalog is None:
        click.echo(
            "no catalog, so no game is shared; 'lanspread catalog scan"
            f" {shlex.quote(str(lc.games_dir))}' makes one",
            err=True,
        )


@click.command()
@library_options
@click.pass_context
def recover(
    ctx: click.Context, games_dir: Path | None, catalog: Path | None, state_dir: Path | None
) -> None:
    """Finish or undo operations a crash interrupted.

    Every command and every peer start does this first; run it alone to see
    what it does. It only deletes folders an intent or marker proves are ours.

    Example: lanspread recover --games-dir ~/games
    """
    hint = "it finished or undid what a crash left when it started; nothing to do now"
    with (
        _peer_runs_hint("recover", hint),
        local_context(
            ctx, games_dir, catalog, state_dir, holder="lanspread recover", quiet_recovery=True
        ) as lc,
    ):
        pass
    for note in lc.recovered:
        click.echo(f"recovered: {note}")
    if not lc.recovered:
        click.echo(f"nothing to recover in {lc.games_dir}")


@contextmanager
def _peer_runs_hint(command: str, instead: str) -> Iterator[None]:
    """A running peer holds the state dir: say so, and what to do ``instead``."""
    from lanspread_core.library.statedir import StateDirBusy

    try:
        yield
    except StateDirBusy as busy:
        raise StateDirBusy(
            f"{command}: this state directory is in use by"
            f" {busy.holder or 'another lanspread process'}; {instead}",
            busy.holder,
        ) from None


class Declined(LanspreadError):
    """The user answered no: nothing was done."""


def confirm_loss(op: str, game: str, changes: dict[str, Any], yes: bool) -> None:
    """Ask before ``op`` deletes files the user made; refuse without a terminal or --yes.

    ``changes`` is the ``local-changes`` answer (docs/protocol.md). Nothing of the
    user's at stake: no question.
    """
    if yes or not at_stake(op, changes):
        return
    if not sys.stdin.isatty():
        raise UsageError(
            f"{op} {game} would delete {loss(op, changes)}; nothing was done: add --yes to go ahead"
        )
    if not click.confirm(f"{deletion(op, game, changes)} Go ahead?", default=False, err=True):
        raise Declined(f"{op} of {game} cancelled; nothing was deleted")


def _operation(name: str, help_text: str, unpacks: bool, asks: bool = False) -> click.Command:
    """A local transaction command; ``unpacks`` adds ``--provider`` and a progress bar,
    ``asks`` adds ``--yes`` and the question before the user's files are deleted."""

    @click.argument("game")
    @library_options
    @click.option("--json", "as_json", is_flag=True, help="Print the outcome as JSON.")
    @click.pass_context
    def command(
        ctx: click.Context,
        game: str,
        games_dir: Path | None,
        catalog: Path | None,
        state_dir: Path | None,
        as_json: bool,
        provider: str = "auto",
        yes: bool = False,
    ) -> None:
        def ask(changes: dict[str, Any]) -> None:
            confirm_loss(name, game, changes, yes)

        check = ask if asks else None
        # a running peer holds the state dir: let it do the work (with --provider, if named)
        fields = {"provider": provider} if unpacks and provider != AUTO else {}
        if via_running_peer(name, game, state_dir, games_dir, as_json, check, **fields):
            return
        with local_context(ctx, games_dir, catalog, state_dir, provider, f"lanspread {name}") as lc:
            if check is not None:
                from lanspread_core.install.localfiles import changes

                check(changes(lc.state, game, lc.transactions.require_root(game)).to_json())
            method = getattr(lc.transactions, name.replace("-", "_"))
            if unpacks:
                with progress_bar(f"{name} {game}") as update:
                    # the catalog's per-file hashes, when it has them, are checked too
                    outcome = method(game, progress=update, trusted=lc.catalog.get(game))
            else:
                outcome = method(game)
        _report(outcome, as_json)

    if unpacks:
        command = provider_option(command)
    if asks:
        command = click.option(
            "--yes",
            "-y",
            is_flag=True,
            help="Do not ask before deleting files you added or changed in local/"
            " (needed when there is no terminal to ask on).",
        )(command)
    return click.command(name=name, help=help_text)(command)


_VIA_PEER = (
    "When a peer runs on the state dir ('lanspread run'), the peer does it and"
    " this command shows its progress (Ctrl-C asks it to cancel); otherwise it"
    " works on the games dir directly."
)

install = _operation(
    "install",
    "Unpack a downloaded GAME into its local/ folder, crash-safely.\n\n"
    f"{_VIA_PEER}\n\n"
    "Example: lanspread install quake --games-dir ~/games --provider unrar",
    unpacks=True,
)
update = _operation(
    "update",
    "Reinstall GAME from its current archives, keeping your own files in local/.\n\n"
    "Game files you changed are replaced by the archives' version; when there are"
    " such files it asks first (--yes skips the question).\n\n"
    f"{_VIA_PEER}\n\n"
    "Example: lanspread update quake --games-dir ~/games",
    unpacks=True,
    asks=True,
)
uninstall = _operation(
    "uninstall",
    "Remove GAME's local/ folder (your files in it too); the download stays.\n\n"
    "When you added or changed files in local/ since the install, it names them"
    " and asks first (--yes skips the question; without a terminal --yes is needed).\n\n"
    f"{_VIA_PEER}\n\n"
    "Example: lanspread uninstall quake --games-dir ~/games",
    unpacks=False,
    asks=True,
)
remove_download = _operation(
    "remove-download",
    "Delete GAME's downloaded archives; refused while it is installed.\n\n"
    f"{_VIA_PEER}\n\n"
    "Example: lanspread remove-download quake --games-dir ~/games",
    unpacks=False,
)

LOCAL_COMMANDS = (scan, recover, install, update, uninstall, remove_download)
