"""``lanspread run`` and ``lanspread peer``: start a peer with a front-end."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import anyio
import click

from lanspread_core.cli_common import library_options, provider_option, registry_of
from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.plugins import Registry
from lanspread_core.runtime import start_peer
from lanspread_core.statedir import default_games_dir, default_state_dir

F = TypeVar("F", bound=Callable[..., Any])


def _hostport(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    try:
        if isinstance(value, tuple):
            return tuple(HostPort.parse(v) for v in value)
        return HostPort.parse(value) if value else None
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


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
            callback=_hostport,
            help="A peer's control address HOST:PORT (repeatable).",
        ),
        click.option(
            "--listen",
            default="0.0.0.0:0",
            show_default=True,
            callback=_hostport,
            help="Where the QUIC control plane listens (port 0: any free port).",
        ),
        click.option("--name", default="", help="A name other peers show for this one."),
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
        provider_option,
        library_options,
    ]
    for option in options:
        func = option(func)
    return func


def make_config(kw: dict[str, Any]) -> PeerConfig:
    discovery = tuple(d.strip() for d in kw["discovery"].split(",") if d.strip())
    return PeerConfig(
        games_dir=(kw["games_dir"] or default_games_dir()).expanduser().resolve(),
        state_dir=(kw["state_dir"] or default_state_dir()).expanduser().resolve(),
        catalog=kw["catalog"],
        provider=kw["provider"],
        discovery=discovery,
        static_peers=kw["peers"],
        listen=kw["listen"],
        name=kw["name"],
        ping_interval=kw["ping_interval"],
        stale_timeout=kw["stale_timeout"],
    )


def _first_error(exc: BaseException) -> LanspreadError | None:
    if isinstance(exc, LanspreadError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _first_error(inner)) is not None:
                return found
    return None


def run_peer(registry: Registry, config: PeerConfig, frontend: str) -> int:
    record = registry.frontends.get(frontend)
    if record is None:
        raise UsageError(
            f"front-end {frontend!r} is not installed"
            f" (installed: {', '.join(sorted(registry.frontends)) or 'none'})"
        )
    ui = record.factory(config)

    async def main() -> int:
        async with anyio.create_task_group() as tg:
            handle = await start_peer(config, registry, tg)
            code = await ui.run(handle)
            await handle.shutdown()
            return code

    try:
        return anyio.run(main, backend="asyncio")
    except BaseException as exc:
        found = _first_error(exc)
        if found is None:
            raise
        raise found from None


@click.command()
@run_options
@click.option(
    "--frontend",
    default="jsonl",
    show_default=True,
    help="What drives the peer and shows its events (see 'lanspread plugins').",
)
@click.pass_context
def run(ctx: click.Context, frontend: str, **kw: Any) -> None:
    """Run a peer: find others on the LAN, share and fetch games.

    Example: lanspread run --games-dir ~/games --catalog catalog.json
    """
    ctx.exit(run_peer(registry_of(ctx), make_config(kw), frontend))


@click.command()
@run_options
@click.pass_context
def peer(ctx: click.Context, **kw: Any) -> None:
    """Run a peer driven by JSON lines on stdin (same as 'run --frontend jsonl').

    Each input line is a command such as {"id": 1, "cmd": "list-games"}; each
    output line is a result, an error or an event. See docs/protocol.md.

    Example: lanspread peer --games-dir /tmp/g --peer 10.0.0.2:7000
    """
    ctx.exit(run_peer(registry_of(ctx), make_config(kw), "jsonl"))


PEER_COMMANDS = (run, peer)
