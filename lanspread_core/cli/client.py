"""Commands that talk to the running peer: status, games, download, cancel ...

They find the peer by its state directory (``--state-dir``, or
``LANSPREAD_STATE_DIR``, or the default) and speak JSONL on its
``control.sock``. An operation shows a progress bar on stderr (when it is a
terminal) until the peer says it has ended; then the command exits 0, or 1
with the peer's reason in one line. Ctrl-C asks the peer to cancel the
operation; a second Ctrl-C stops waiting and leaves it running.

``install``, ``update``, ``uninstall`` and ``remove-download`` live in
:mod:`lanspread_core.cli.local` and come here through :func:`via_running_peer`
when a peer is running, since the peer holds the state directory's lock.

anyio, rich and the socket client are imported inside the commands: every
``lanspread`` command, ``--help`` included, imports this module.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from lanspread_core.cli.common import emit_json
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.library.statedir import ENV_STATE_DIR, default_state_dir

if TYPE_CHECKING:
    from rich.console import Console

    from lanspread_core.ipc.client import PeerClient

F = TypeVar("F", bound=Callable[..., Any])


class Detached(LanspreadError):
    """The user stopped waiting; the operation goes on in the peer."""

    exit_code = 130


def state_dir_option(func: F) -> F:
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar=ENV_STATE_DIR,
        show_envvar=True,
        help="The running peer's state directory; its control.sock is how this"
        f" command reaches it. [default: {default_state_dir()}]",
    )(func)


def json_option(func: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(func)


def _run(main: Callable[[], Any]) -> Any:
    import anyio

    return anyio.run(main, backend="asyncio")


# -------------------------------------------------------------- operations


async def run_operation(peer: PeerClient, op: str, game: str, **fields: Any) -> dict[str, Any]:
    """Run ``op`` on ``game`` with ``wait: true`` (and ``fields``): a bar until it
    ends, its result."""
    import anyio
    from rich.console import Console

    from lanspread_core.events import Event, OpBegin, OpProgress
    from lanspread_core.frontends.present import OperationBars, make_progress

    console = Console(stderr=True)
    progress = make_progress(console=console, transient=True)
    bars = OperationBars(progress)

    def on_event(event: Event) -> None:
        if isinstance(event, OpBegin) and event.game_id == game:
            bars.begin(str(event.kind), game)
        elif isinstance(event, OpProgress) and event.game_id == game:
            bars.update(event)

    outcome: dict[str, Any] = {}
    shown = progress if console.is_terminal else contextlib.nullcontext()
    with shown:
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                try:
                    outcome["result"] = await peer.call(
                        op, game_id=game, wait=True, on_event=on_event, **fields
                    )
                except LanspreadError as exc:
                    outcome["error"] = exc
                tg.cancel_scope.cancel()

            tg.start_soon(call)
            detached = await _interruptible(peer, op, game, console)
            if detached is not None:
                outcome.setdefault("error", detached)
            tg.cancel_scope.cancel()
    if "error" in outcome:
        raise outcome["error"]
    return dict(outcome["result"] or {})


async def _interruptible(peer: PeerClient, op: str, game: str, console: Console) -> Detached | None:
    """Wait for Ctrl-C: the first asks the peer to cancel, the second detaches."""
    import anyio

    from lanspread_core.ipc.client import PeerCommandError

    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            try:
                await peer.call("cancel", game_id=game)
            except PeerCommandError:
                return Detached(f"stopped waiting; the {op} of {game} goes on in the peer")
            console.print(
                f"lanspread: cancelling the {op} of {game} (Ctrl-C again to stop waiting)",
                highlight=False,
            )
            break
        async for _ in signals:
            return Detached(f"stopped waiting; the {op} of {game} goes on in the peer")
    return None


def report(op: str, game: str, result: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    provider = result.get("provider")
    click.echo(f"{op}: {game} done" + (f" with {provider}" if provider else ""))


def via_running_peer(
    op: str,
    game: str,
    state_dir: Path | None,
    games_dir: Path | None,
    as_json: bool,
    check: Callable[[dict[str, Any]], None] | None = None,
    **fields: Any,
) -> bool:
    """Run a local command's operation on the running peer, if there is one.

    False when no peer runs on ``state_dir`` (the caller then works locally).
    ``check`` gets the peer's ``local-changes`` answer first and may refuse;
    ``fields`` go with the command (``provider``).
    """
    from lanspread_core.ipc.client import NoRunningPeer, connect

    async def main() -> dict[str, Any]:
        async with connect(state_dir) as peer:
            if games_dir is not None:
                mine = games_dir.expanduser().resolve()
                theirs = Path(peer.ready.get("games_dir", "")).resolve()
                if mine != theirs:
                    raise UsageError(
                        f"the peer running on this state dir uses games dir {theirs},"
                        f" not {mine}; stop it or leave out --games-dir"
                    )
            if check is not None:
                check(await peer.call("local-changes", game_id=game))
            return await run_operation(peer, op, game, **fields)

    try:
        result = _run(main)
    except NoRunningPeer:
        return False
    report(op, game, result, as_json)
    return True


def _operation_command(op: str, help_text: str) -> click.Command:
    @click.argument("game")
    @state_dir_option
    @json_option
    def command(game: str, state_dir: Path | None, as_json: bool) -> None:
        from lanspread_core.ipc.client import connect

        async def main() -> dict[str, Any]:
            async with connect(state_dir) as peer:
                return await run_operation(peer, op, game)

        report(op, game, _run(main), as_json)

    return click.command(name=op, help=help_text)(command)


download = _operation_command(
    "download",
    """Download GAME from the peers that have it, then install it.

    The running peer fetches the archives from several peers at once, checks
    every chunk, and installs the game when all of it has arrived. A bar shows
    bytes, rate, time left and how many peers it draws from. Ctrl-C cancels
    the download; Ctrl-C again stops waiting and lets it go on.

    \b
    Example:
      lanspread download quake
    """,
)

stream_install = _operation_command(
    "stream-install",
    """Install GAME straight from a peer, without storing its archives.

    For a machine short on disk: the peer receives the unpacked files and
    installs them. The game is then installed but not shareable. Ctrl-C
    cancels; Ctrl-C again stops waiting and lets it go on.

    \b
    Example:
      lanspread stream-install quake
    """,
)


# ------------------------------------------------------------------ queries


@click.command()
@state_dir_option
@json_option
def status(state_dir: Path | None, as_json: bool) -> None:
    """Show the running peer: who it is, where it listens, peers, games, services.

    \b
    Example:
      lanspread status --state-dir ~/.local/state/lanspread
    """
    from lanspread_core.ipc.client import connect

    async def main() -> Any:
        async with connect(state_dir) as peer:
            return await peer.call("status")

    info = _run(main)
    if as_json:
        emit_json(info)
        return
    name = f" ({info['name']})" if info.get("name") else ""
    active = ", ".join(f"{a['kind']} {a['game_id']}" for a in info.get("active", [])) or "none"
    lines = [
        ("peer", f"{info.get('peer_id')}{name}, lanspread {info.get('version', '?')}"),
        ("control", f"{info.get('control')} (data port {info.get('data_port')})"),
        ("games dir", str(info.get("games_dir"))),
        ("state dir", str(info.get("state_dir"))),
        ("peers", str(info.get("peers", 0))),
        (
            "games",
            f"{info.get('games', 0)} here, serving {len(info.get('serving', []))}",
        ),
        ("catalog", _catalog(info.get("catalog") or {})),
        ("active", active),
        ("services", _services(info.get("services", {}))),
    ]
    for key, value in lines:
        click.echo(f"{key:<10} {value}")


def _catalog(catalog: dict[str, Any]) -> str:
    """The catalog a peer holds, as ``status`` says it: how many games, from where."""
    parts = [str(catalog.get("local") or "no catalog file")]
    if catalog.get("party_seq"):
        parts.append(f"party catalog seq {catalog['party_seq']} of {catalog.get('party_key')}")
    elif catalog.get("trusted_key"):
        parts.append(f"no party catalog yet (trusting {catalog['trusted_key']})")
    return f"{catalog.get('games', 0)} games: {'; '.join(parts)}"


def _services(services: dict[str, dict[str, Any]]) -> str:
    from lanspread_core.frontends.vocabulary import plural

    words = []
    for name, s in sorted(services.items()):
        state = "running" if s.get("running") else "stopped"
        if s.get("restarts"):
            state += f", {plural(s['restarts'], 'restart')}"
        if s.get("last_error") and not s.get("running"):
            state += f": {s['last_error']}"
        words.append(f"{name} {state}")
    return "; ".join(words) or "-"


@click.command()
@state_dir_option
@json_option
def games(state_dir: Path | None, as_json: bool) -> None:
    """List the games here and on the other peers, with each one's state.

    States: Ready (downloaded and shared), Downloading, Installed, not
    shareable (stream-installed), Busy (an operation runs), Outdated (not the
    catalog version), Not in catalog, Available from N peers (not here yet).

    \b
    Example:
      lanspread games --json
    """
    from lanspread_core.frontends.vocabulary import availability, size
    from lanspread_core.ipc.client import connect

    async def main() -> Any:
        async with connect(state_dir) as peer:
            return await peer.call("list-games")

    listing = _run(main)
    if as_json:
        emit_json(listing)
        return
    entries = listing.get("games", [])
    if not entries:
        click.echo("no games here or on any peer")
        return
    click.echo(f"{'game':<20} {'version':<10} {'size':>10}  {'installed':<9}  state")
    for g in entries:
        version = g.get("version") or g.get("catalog_version") or "-"
        click.echo(
            f"{g['id']:<20} {version:<10} {size(g.get('size')):>10}  "
            f"{'yes' if g.get('installed') else 'no':<9}  {availability(g)}"
        )


@click.command()
@click.argument("game")
@click.option(
    "--discard",
    is_flag=True,
    help="Also delete what a download of GAME fetched (running or paused),"
    " instead of keeping it for a resume.",
)
@state_dir_option
def cancel(game: str, discard: bool, state_dir: Path | None) -> None:
    """Stop GAME's running download, stream-install, install or update.

    What was already in place stays: a cancelled install or update leaves the
    previous state; a cancelled download is paused and keeps every verified
    chunk, so 'lanspread download GAME' fetches only the rest.

    \b
    Examples:
      lanspread cancel quake
      lanspread cancel quake --discard    # and delete what it fetched
    """
    from lanspread_core.ipc.client import connect

    async def main() -> Any:
        async with connect(state_dir) as peer:
            return await peer.call("cancel", game_id=game, discard=discard)

    from lanspread_core.frontends.vocabulary import size

    result = _run(main) or {}
    if "discarded" in result:
        click.echo(f"cancel: deleted the paused download of {game} ({size(result['discarded'])})")
    elif discard:
        click.echo(f"cancel: asked the peer to stop {game} and delete what it fetched")
    else:
        click.echo(f"cancel: asked the peer to stop the operation on {game}")


@click.command()
@state_dir_option
def stop(state_dir: Path | None) -> None:
    """Stop the running peer: it says goodbye to the other peers and exits.

    \b
    Example:
      lanspread stop
    """
    from lanspread_core.ipc.client import connect

    async def main() -> Any:
        async with connect(state_dir) as peer:
            return await peer.call("shutdown")

    _run(main)
    click.echo("stop: the peer is stopping")


CLIENT_COMMANDS = (status, games, download, stream_install, cancel, stop)
