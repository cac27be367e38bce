"""The ``lanspread`` command line.

Every expected failure is a :class:`LanspreadError` and becomes one line on
stderr and its exit code; plugins add commands through a hook.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from lanspread_core.cli.catalog import CATALOG_COMMANDS
from lanspread_core.cli.client import CLIENT_COMMANDS
from lanspread_core.cli.common import LanspreadGroup, emit_json, provider_option, registry_of
from lanspread_core.cli.config import CONFIG_COMMANDS
from lanspread_core.cli.demo import demo
from lanspread_core.cli.local import LOCAL_COMMANDS
from lanspread_core.cli.logs import logs
from lanspread_core.cli.pack import pack
from lanspread_core.cli.party import party, publish
from lanspread_core.cli.peer import PEER_COMMANDS
from lanspread_core.cli.settings import apply_settings
from lanspread_core.errors import LanspreadError
from lanspread_core.frontends.logfile import setup_logging
from lanspread_core.library.layout import archives_for_path
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import choose

__all__ = ["cli", "emit_json", "main", "provider_option", "registry_of"]


@click.group(cls=LanspreadGroup)
@click.version_option(
    package_name="lanspread-core", prog_name="lanspread", message="%(prog)s %(version)s"
)
@click.option(
    "-v",
    "--verbose",
    is_flag=True,
    help="Show debug messages on stderr, and write them to a peer's log file.",
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """Share games at a LAN party.

    Peers find each other, download games from several peers at once with every
    chunk verified, and install them crash-safely.
    """
    setup_logging(verbose)
    apply_settings(ctx)


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def plugins(ctx: click.Context, as_json: bool) -> None:
    """List installed plugins and the providers and packers they supply.

    Example: lanspread plugins --json
    """
    registry = registry_of(ctx)
    providers: dict[str, dict[str, Any]] = {
        name: {
            "plugin": registry.owners.get(f"provider:{name}"),
            "description": rec.description,
            "handles": list(rec.handles),
            "kinds": list(rec.kinds),
        }
        for name, rec in sorted(registry.providers.items())
    }
    data: dict[str, Any] = {
        "plugins": [
            {"name": p.name, "distribution": p.distribution, "version": p.version, "kinds": p.kinds}
            for p in registry.plugins
        ],
        "providers": providers,
        "discovery": sorted(registry.discovery),
        "frontends": sorted(registry.frontends),
        "packers": {
            name: {
                "plugin": registry.owners.get(f"packer:{name}"),
                "description": rec.description,
                "format": rec.format,
            }
            for name, rec in sorted(registry.packers.items())
        },
        "warnings": registry.warnings,
    }
    if as_json:
        emit_json(data)
        return
    for p in data["plugins"]:
        kinds = ", ".join(p["kinds"]) or "-"
        click.echo(f"{p['name']:<14} {p['distribution']} {p['version']}  [{kinds}]")
    if providers:
        click.echo("\nproviders:")
        for name, info in providers.items():
            click.echo(f"  {name:<12} handles {', '.join(info['handles']) or '-'}")
    if data["packers"]:
        click.echo("\npackers (lanspread pack --packer NAME):")
        for name, info in data["packers"].items():
            click.echo(f"  {name:<12} writes {info['format'] or '-'}")


@cli.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@provider_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.pass_context
def inspect(ctx: click.Context, path: Path, provider: str, as_json: bool) -> None:
    """Show how a provider sees PATH: the probe result and every entry.

    PATH is an archive, the first volume of a multi-volume set, or a game root
    (its *.eti files in sorted order).

    Example: lanspread inspect ~/games/quake --provider unrar
    """
    archives = archives_for_path(path)
    choice = choose(registry_of(ctx), provider, archives)
    entries = choice.provider.entries(archives)
    if as_json:
        emit_json(
            {
                "provider": choice.name,
                "probe": choice.probe.to_json(),
                "entries": [e.to_json() for e in entries],
            }
        )
        return
    p = choice.probe
    click.echo(
        f"provider {choice.name}: {p.format}, solid={p.solid}, multi_volume={p.multi_volume},"
        f" encrypted={p.encrypted}, volumes={len(p.volumes)}"
    )
    for e in entries:
        crc = "-" if e.crc32 is None else f"{e.crc32:08x}"
        click.echo(f"  {e.kind:<7} {e.size:>12} {crc:>8}  {e.path}")


for _command in (*LOCAL_COMMANDS, *PEER_COMMANDS, *CLIENT_COMMANDS, logs, demo):
    cli.add_command(_command)
for _command in (*CATALOG_COMMANDS, *CONFIG_COMMANDS):
    cli.add_command(_command)
cli.add_command(party)
cli.add_command(pack)
if isinstance(_catalog := cli.commands.get("catalog"), click.Group):
    _catalog.add_command(publish)  # 'lanspread catalog publish', beside 'party publish'


def main(argv: list[str] | None = None) -> None:
    """Console-script entry: load plugins, let them add commands, run."""
    try:
        registry = load_registry()
    except LanspreadError as exc:
        click.echo(f"lanspread: {exc}", err=True)
        sys.exit(exc.exit_code)
    for warning in registry.warnings:
        click.echo(f"lanspread: warning: {warning}", err=True)
    registry.pm.hook.lanspread_register_commands(cli=cli)
    cli.main(args=argv, obj=registry, prog_name="lanspread")
