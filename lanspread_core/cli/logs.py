"""``lanspread logs``: read the peer's log file and the unpack logs."""

from __future__ import annotations

import collections
import contextlib
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from lanspread_core.frontends import logfile
from lanspread_core.frontends.logfile import LEVELS, LevelFilter, level_number, log_files
from lanspread_core.install.unpacklog import clean_terminal, is_run_of, runs
from lanspread_core.library.statedir import ENV_STATE_DIR, StateDir, default_state_dir


@click.command()
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar=ENV_STATE_DIR,
    show_envvar=True,
    help=f"Whose logs: the peer's state directory. [default: {default_state_dir()}]",
)
@click.option(
    "--level",
    type=click.Choice([lvl.lower() for lvl in LEVELS], case_sensitive=False),
    default="debug",
    show_default=True,
    help="Show records at this level and above (debug shows everything in the file;"
    " the peer writes info and above unless started with 'lanspread -v').",
)
@click.option(
    "-f",
    "--follow",
    is_flag=True,
    help="After printing, keep printing new records as the peer writes them, like"
    " 'tail -f' (across rotations). Ctrl-C stops.",
)
@click.option(
    "-n",
    "--lines",
    type=click.IntRange(min=0),
    help="Print only the last N lines. [default: all kept]",
)
@click.option(
    "--unpack",
    is_flag=True,
    help="Print the unpack logs instead, newest first: one file per install, update"
    " or stream-install, the last 20 kept, terminal control sequences cleaned.",
)
@click.option("--game", help="With --unpack: only the runs for this game.")
def logs(
    state_dir: Path | None,
    level: str,
    follow: bool,
    lines: int | None,
    unpack: bool,
    game: str | None,
) -> None:
    """Print the peer's log: <state dir>/logs/lanspread.log.

    A running peer logs its start, the peers it meets and loses, every
    operation's start, end or failure, and warnings. The file is rotated at
    1 MiB and five older files are kept; this prints them oldest first.

    \b
    Examples:
      lanspread logs --level warning
      lanspread logs --follow
      lanspread logs --unpack --game quake
    """
    state = StateDir(state_dir)
    if unpack:
        _print_unpack_logs(state, game)
        return
    keep = LevelFilter(level_number(level))
    files = log_files(state)
    if not files and not follow:
        click.echo(
            f"lanspread: no log at {state.log_file} yet; a peer writes it while it runs",
            err=True,
        )
        return
    selected, offset = _read(files, keep, state.log_file)
    shown: Iterable[str] = selected if lines is None else collections.deque(selected, maxlen=lines)
    out = sys.stdout
    out.writelines(shown)
    out.flush()
    if follow:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how following ends
            logfile.follow(state.log_file, sys.stdout, keep, start=offset)


def _read(files: list[Path], keep: LevelFilter, current: Path) -> tuple[list[str], int | None]:
    """The kept lines of ``files``, and how far into ``current`` they reach."""
    out: list[str] = []
    offset = None
    for path in files:
        try:
            with path.open(encoding="utf-8", errors="replace") as f:
                out.extend(keep(f))
                if path == current:
                    offset = f.tell()
        except FileNotFoundError:  # rotated away while we listed
            continue
    return out, offset


def _print_unpack_logs(state: StateDir, game: str | None) -> None:
    """Newest first: the run a user wants to read is usually the last one."""
    found = [p for p in reversed(runs(state.unpack_logs)) if game is None or is_run_of(p, game)]
    if not found:
        which = f" for {game}" if game else ""
        click.echo(f"lanspread: no unpack logs{which} in {state.unpack_logs}", err=True)
        return
    for i, path in enumerate(found):
        if i:
            click.echo()
        click.echo(f"==> {path.name} <==")
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            continue
        # written clean, but cleaned again: a file from an older version may not be
        click.echo(clean_terminal(text).rstrip("\n"))
