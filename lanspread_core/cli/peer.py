"""``lanspread run`` and ``lanspread peer``: start a peer with a front-end."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import anyio
import anyio.abc
import click

from lanspread_core.cli.common import library_options, provider_option, registry_of
from lanspread_core.cli.settings import load_settings
from lanspread_core.config import (
    ANY_ADDRESS,
    DEFAULT_PORT,
    FOLLOW_CONTROL_PORT,
    HostPort,
    PeerConfig,
)
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.frontends.logfile import close_log_file, log_events, open_log_file
from lanspread_core.library.statedir import StateDir, default_games_dir, default_state_dir
from lanspread_core.plugin.registry import Registry

if TYPE_CHECKING:  # the runtime pulls in aioquic; only a running peer needs it
    from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _peers(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    try:
        return tuple(HostPort.parse(v) for v in value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _listen(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    try:
        return HostPort.listen(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _party(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if not value:
        return None
    from lanspread_core.library.party import PartyError, parse_key

    try:
        parse_key(value)
    except PartyError as exc:
        raise click.BadParameter(str(exc)) from exc
    return value.strip()


def run_options(func: F) -> F:
    """The options every way of starting a peer shares."""
    options = [
        click.option(
            "--discovery",
            default="mdns",
            show_default=True,
            help="Comma-separated discovery backends: mdns, static. Peers given with"
            " --peer are always used.",
        ),
        click.option(
            "--peer",
            "peers",
            multiple=True,
            callback=_peers,
            help=f"A peer's address, HOST or HOST:PORT (port {DEFAULT_PORT} when left out;"
            " repeatable).",
        ),
        click.option(
            "--listen",
            default=f"{ANY_ADDRESS}:{DEFAULT_PORT}",
            show_default=True,
            callback=_listen,
            help="Where the control plane listens (UDP): PORT (every address), HOST or"
            " HOST:PORT; port 0 takes any free port.",
        ),
        click.option(
            "--data-port",
            type=click.IntRange(0, 65535),
            default=None,
            help="The TCP port downloads are served on. [default: the --listen port's number]",
        ),
        click.option(
            "--name",
            default="",
            help=(
                "A name other peers show for this one. [default: this machine's host"
                " name, and :PORT with another --listen port than the default]"
            ),
        ),
        click.option(
            "--ping-interval",
            type=float,
            default=2.0,
            show_default=True,
            help="Seconds between liveness pings to an idle peer.",
        ),
        click.option(
            "--stale-timeout",
            type=float,
            default=8.0,
            show_default=True,
            help="Seconds of silence after which a peer is forgotten.",
        ),
        click.option(
            "--party",
            default=None,
            callback=_party,
            envvar="LANSPREAD_PARTY",
            show_envvar=True,
            help="The party key (lsparty1-...) whose signed catalog this peer takes."
            " [default: the settings' party_key, else the first one met]",
        ),
        provider_option,
        library_options,
    ]
    for option in options:
        func = option(func)
    return func


#: what ``run_options`` and ``--ui`` give; any other option of ``run`` came from a plugin
_CORE_OPTIONS = frozenset(
    {"discovery", "peers", "listen", "data_port", "name", "ping_interval", "stale_timeout"}
    | {"provider", "party"}
    | {"games_dir", "state_dir", "catalog", "ui"}
)


def make_config(kw: dict[str, Any]) -> PeerConfig:
    discovery = tuple(d.strip() for d in kw["discovery"].split(",") if d.strip())
    uis = tuple(u.strip() for value in kw.get("ui") or () for u in value.split(",") if u.strip())
    return PeerConfig(
        games_dir=(kw["games_dir"] or default_games_dir()).expanduser().resolve(),
        state_dir=(kw["state_dir"] or default_state_dir()).expanduser().resolve(),
        catalog=kw["catalog"],
        party_key=kw.get("party") or _settings_party_key(),
        provider=kw["provider"],
        discovery=discovery,
        static_peers=kw["peers"],
        listen=kw["listen"],
        data_port=FOLLOW_CONTROL_PORT if kw["data_port"] is None else kw["data_port"],
        name=kw["name"],
        ping_interval=kw["ping_interval"],
        stale_timeout=kw["stale_timeout"],
        ui=uis,
        ui_options={k: v for k, v in kw.items() if k not in _CORE_OPTIONS},
    )


def _settings_party_key() -> str | None:
    """The party key ``lanspread.toml`` trusts, if it names one."""
    from lanspread_core.library.party import PartyError, parse_key

    key = load_settings().party_key
    if key is not None:
        try:
            parse_key(key)
        except PartyError as exc:
            raise UsageError(f"the setting party_key is wrong: {exc}") from None
    return key


def _first_error(exc: BaseException) -> LanspreadError | None:
    if isinstance(exc, LanspreadError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first_error(inner)) is not None:
                return found
    return None


def run_peer(
    registry: Registry,
    config: PeerConfig,
    frontend: str,
    verbose: bool = False,
    notice: str | None = None,
) -> int:
    """Run a peer with a front-end until it stops; the front-end's exit code.

    Next to the front-end run what every running peer has, whatever drives it:
    the local control socket, the event log, and a clean stop on SIGINT/SIGTERM.
    ``notice`` goes to stderr once the peer is up (a start that fails says
    only why).
    """
    from lanspread_core.ipc.server import serve_control_socket
    from lanspread_core.runtime.peer import LocalService, start_peer

    names = [frontend, *(u for u in config.ui if u != frontend)]
    for name in names:
        if name not in registry.frontends:
            raise UsageError(
                f"front-end {name!r} is not installed"
                f" (installed: {', '.join(sorted(registry.frontends)) or 'none'})"
            )
    ui, *beside = [registry.frontends[name].factory(config) for name in names]
    state = StateDir(config.state_dir)

    async def control_socket(handle: PeerRuntimeHandle, task_status: Any) -> None:
        await serve_control_socket(handle, state.control_socket, task_status=task_status)

    async def main() -> int:
        async with anyio.create_task_group() as tg:
            services = [LocalService("control-socket", control_socket)]
            # a front-end may serve something under the peer's supervisor (the web UI)
            for each in (ui, *beside):
                services.extend(getattr(each, "services", ()))
            handle = await start_peer(config, registry, tg, services)
            if notice:
                click.echo(notice, err=True)
            async with anyio.create_task_group() as extras:
                await _start_extras(extras, handle, state)
                for other in beside:  # they end with the main front-end
                    extras.start_soon(other.run, handle)
                code: int = await ui.run(handle)
                extras.cancel_scope.cancel()
            await handle.shutdown()
        return code

    log_handler = open_log_file(state, verbose)
    try:
        return anyio.run(main, backend="asyncio")
    except KeyboardInterrupt:  # Ctrl-C before the peer was up
        return 130
    except BaseException as exc:
        found = _first_error(exc)
        if found is None:
            raise
        raise found from None
    finally:
        close_log_file(log_handler)


async def _start_extras(
    tg: anyio.abc.TaskGroup, handle: PeerRuntimeHandle, state: StateDir
) -> None:
    tg.start_soon(log_events, handle)
    tg.start_soon(_stop_on_signal, handle)


async def _stop_on_signal(handle: PeerRuntimeHandle) -> None:
    """Ctrl-C or SIGTERM: say Goodbye and stop, as the ``shutdown`` command does."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("%s: stopping", signal.Signals(signum).name)
            await handle.shutdown()


#: what ``run`` says when it has no catalog, so shares nothing
NO_CATALOG_HINT = (
    "lanspread: no catalog, so no game is shared. Two ways to get one:\n"
    "  make one from your games: lanspread catalog scan {games}\n"
    "  or join a party: lanspread run --party KEY (the key the organizer gives you)"
)


def _verbose(ctx: click.Context) -> bool:
    return bool(ctx.find_root().params.get("verbose"))


@click.command()
@run_options
@click.option(
    "--ui",
    multiple=True,
    help="More front-ends to run beside --frontend, e.g. --ui web (a plugin;"
    " comma-separated or repeated).",
)
@click.option(
    "--frontend",
    default="console",
    show_default=True,
    help="What drives the peer and shows its events: console (a live view for people;"
    " plain lines when stdout is not a terminal) or jsonl (see 'lanspread plugins').",
)
@click.pass_context
def run(ctx: click.Context, /, frontend: str, **kw: Any) -> None:
    """Run a peer: find others on the LAN, share and fetch games.

    Shows the other peers, your library with each game's state, a progress
    bar per running operation and errors, until Ctrl-C (which says goodbye to
    the other peers and exits 0). While it runs, 'lanspread status', 'games',
    'download', 'install' ... in another terminal talk to it through
    <state dir>/control.sock. It logs to <state dir>/logs/lanspread.log
    (see 'lanspread logs'; 'lanspread -v run' logs debug messages too).

    \b
    Options left out come from the settings ('lanspread config show'), and the
    catalog from <games dir>/catalog.json when there is one.

    \b
    Example:
      lanspread run --games-dir ~/games --catalog catalog.json --name alice
    """
    config = make_config(kw)
    notice = None
    if config.catalog is None and not kw.get("party") and load_settings().party_key is None:
        notice = NO_CATALOG_HINT.format(games=config.games_dir)
    ctx.exit(run_peer(registry_of(ctx), config, frontend, _verbose(ctx), notice))


@click.command()
@run_options
@click.option(
    "--ui",
    multiple=True,
    help="Front-ends to run beside the JSON lines, e.g. --ui web (a plugin).",
)
@click.pass_context
def peer(ctx: click.Context, /, **kw: Any) -> None:
    """Run a peer driven by JSON lines on stdin (same as 'run --frontend jsonl').

    Each input line is a command such as {"id": 1, "cmd": "list-games"}; each
    output line is a result, an error or an event. End of input stops the
    peer. See docs/protocol.md.

    \b
    Example:
      lanspread peer --games-dir /tmp/g --peer 10.0.0.2:7000
    """
    ctx.exit(run_peer(registry_of(ctx), make_config(kw), "jsonl", _verbose(ctx)))


PEER_COMMANDS = (run, peer)
