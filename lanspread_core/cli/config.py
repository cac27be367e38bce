"""``lanspread config``: show and edit the settings in ``lanspread.toml``."""

from __future__ import annotations

import os

import click

from lanspread_core.cli.common import LanspreadGroup, emit_json, registry_of
from lanspread_core.cli.settings import (
    KEYS,
    effective,
    load_settings,
    parse_value,
    set_value,
    settings_path,
)
from lanspread_core.errors import UsageError
from lanspread_core.plugin.selection import AUTO

_KEY = click.Choice(list(KEYS))


@click.group(cls=LanspreadGroup)
def config() -> None:
    """Settings that stick: games dir, catalog, name, port, provider, party key.

    They live in lanspread.toml in your config folder (LANSPREAD_CONFIG names
    another file). A flag or an environment variable overrides a setting.
    """


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def show(as_json: bool) -> None:
    """Show every setting and where its value comes from: file, environment or default.

    Example: lanspread config show --json
    """
    settings = load_settings()
    shown = effective(settings)
    if as_json:
        emit_json(
            {
                "file": str(settings.path),
                "exists": settings.path.is_file(),
                "settings": {s.key: {"value": s.value, "source": s.source} for s in shown},
            }
        )
        return
    made = "" if settings.path.is_file() else " (not made yet; 'lanspread config set' makes it)"
    click.echo(f"settings file: {settings.path}{made}")
    for s in shown:
        value = "-" if s.value is None else str(s.value)
        click.echo(f"  {s.key:<10} {value:<40} {s.source}")


@config.command("set")
@click.argument("key", type=_KEY, metavar="KEY")
@click.argument("value")
@click.pass_context
def set_(ctx: click.Context, key: str, value: str) -> None:
    """Set KEY to VALUE in the settings file (made if missing).

    Paths are stored absolute. Example: lanspread config set games_dir ~/games
    """
    parsed = parse_value(key, value)
    if key == "provider" and parsed != AUTO and parsed not in registry_of(ctx).providers:
        known = ", ".join(sorted(registry_of(ctx).providers)) or "none"
        raise UsageError(f"provider {parsed!r} is not installed (installed: {known}, or auto)")
    path = set_value(key, parsed)
    click.echo(f"{key} = {parsed} (in {path})")
    env = KEYS[key].env
    if env and os.environ.get(env):
        click.echo(f"note: {env} is set here and overrides this setting", err=True)


@config.command("unset")
@click.argument("key", type=_KEY, metavar="KEY")
def unset(key: str) -> None:
    """Remove KEY from the settings file, so its default applies again.

    Example: lanspread config unset name
    """
    path = settings_path()
    if load_settings(path).value(key) is None:
        click.echo(f"{key} is not set in {path}")
        return
    set_value(key, None, path)
    click.echo(f"{key} removed (from {path})")


CONFIG_COMMANDS = (config,)
