"""Pieces every ``lanspread`` command shares: error handling, options, output."""

from __future__ import annotations

import functools
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from lanspread_core.errors import LanspreadError
from lanspread_core.library.statedir import ENV_STATE_DIR, StateDir
from lanspread_core.plugin.registry import Registry, load_registry
from lanspread_core.plugin.selection import AUTO, ENV_PROVIDER

F = TypeVar("F", bound=Callable[..., Any])


class LanspreadGroup(click.Group):
    """A click group that turns any error into one line and an exit code.

    A :class:`LanspreadError` is expected and says what went wrong. Anything
    else is a bug: the user gets one sentence naming the log, and the
    traceback goes into the state directory's log file (the one
    ``lanspread logs`` reads), never onto the terminal.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta[_ARGV] = list(args)  # where a crash report goes: the command's --state-dir
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LanspreadError as exc:
            click.echo(f"lanspread: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            where = _log_internal_error(exc, ctx.meta.get(_ARGV, []))
            details = f"the details are in {where}" if where else "no log could be written"
            click.echo(f"lanspread: internal error: {_describe(exc)}; {details}", err=True)
            ctx.exit(INTERNAL_ERROR_EXIT)


#: Exit status of a command that failed by a bug, not by what it was asked to do.
INTERNAL_ERROR_EXIT = 70
_ARGV = "lanspread.argv"
_log = logging.getLogger("lanspread_core.cli")


def _describe(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _state_dir_in(argv: list[str]) -> Path | None:
    for i, arg in enumerate(argv):
        if arg == "--state-dir" and i + 1 < len(argv):
            return Path(argv[i + 1])
        if arg.startswith("--state-dir="):
            return Path(arg.partition("=")[2])
    env = os.environ.get(ENV_STATE_DIR)
    return Path(env) if env else None


def _log_internal_error(exc: Exception, argv: list[str]) -> Path | None:
    """Append ``exc`` with its traceback to the state directory's log; its path, or None."""
    from lanspread_core.frontends.logfile import close_log_file, open_log_file

    record = _log.makeRecord(
        _log.name,
        logging.ERROR,
        __file__,
        0,
        "internal error in 'lanspread %s'",
        (" ".join(argv),),
        (type(exc), exc, exc.__traceback__),
    )
    state = StateDir(_state_dir_in(argv))
    # a running peer's own handler on that file, else one opened for this record
    for handler in logging.getLogger().handlers:
        if getattr(handler, "baseFilename", None) == str(state.log_file):
            handler.handle(record)
            return state.log_file
    try:
        handler = open_log_file(state)
    except OSError:
        return None
    try:
        handler.handle(record)
    finally:
        close_log_file(handler)
    return state.log_file


def provider_option(func: F) -> F:
    """``--provider NAME|auto`` for every command that unpacks or streams."""
    return click.option(
        "--provider",
        default=AUTO,
        envvar=ENV_PROVIDER,
        show_default=True,
        show_envvar=True,
        help="Archive provider by name, or 'auto' to take the first that can handle"
        " the archives. See 'lanspread plugins'.",
    )(func)


def registry_of(ctx: click.Context) -> Registry:
    """The plugins ``main`` loaded; a command run without it (click's test runner) loads them."""
    root = ctx.find_root()
    if not isinstance(root.obj, Registry):
        root.obj = load_registry()
    return root.obj


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


def library_options(func: F) -> F:
    """``--games-dir``, ``--catalog`` and ``--state-dir``, with env vars and defaults."""
    from lanspread_core.library.catalog import ENV_CATALOG
    from lanspread_core.library.statedir import ENV_STATE_DIR, default_state_dir

    func = _catalog_fallback(func)
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=ENV_STATE_DIR,
        show_envvar=True,
        help=f"Where identity, index, intents and logs live. [default: {default_state_dir()}]",
    )(func)
    func = click.option(
        "--catalog",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=ENV_CATALOG,
        show_envvar=True,
        help="The catalog JSON file (games, names, versions)."
        " [default: <games dir>/catalog.json when it exists]",
    )(func)
    return games_dir_option(func)


def games_dir_option(func: F) -> F:
    """``--games-dir`` (``LANSPREAD_GAMES_DIR``, or the settings, or the default)."""
    from lanspread_core.library.statedir import ENV_GAMES_DIR, default_games_dir

    return click.option(
        "--games-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=ENV_GAMES_DIR,
        show_envvar=True,
        help=f"The folder holding one folder per game. [default: {default_games_dir()}]",
    )(func)


def _catalog_fallback(func: F) -> F:
    """No ``--catalog``, environment or setting: the games dir's own ``catalog.json``."""
    from lanspread_core.cli.settings import catalog_in_use

    @functools.wraps(func)
    def wrapper(*args: Any, **kw: Any) -> Any:
        kw["catalog"] = catalog_in_use(kw["catalog"], kw["games_dir"])
        return func(*args, **kw)

    return cast(F, wrapper)


@contextmanager
def progress_bar(description: str) -> Iterator[Callable[[int, int], None]]:
    """A rich progress bar on stderr when it is a terminal; silent otherwise."""
    # imported here: rich costs every command's start-up, and few commands draw a bar
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    console = Console(stderr=True)
    if not console.is_terminal:
        yield lambda done, total: None
        return
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(description, total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        yield update
