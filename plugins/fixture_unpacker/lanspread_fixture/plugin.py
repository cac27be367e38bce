"""The hookimpls of the ``fixture`` plugin: one provider and the ``fixtures`` commands.

Kept apart from the work so the registrations are easy to find; the modules
it imports are small and pure Python (plus blake3), so loading the plugin at
every ``lanspread`` start stays cheap.
"""

from __future__ import annotations

import click

from lanspread_core import ProviderRecord, hookimpl, lazy
from lanspread_fixture.commands import fixtures


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="fixture",
            factory=lazy("lanspread_fixture.provider:FixtureProvider"),
            description="the Lanspread fixture archive format (LSFX1), for tests",
            handles=("lanspread fixture format",),
        )
    ]


@hookimpl
def lanspread_register_commands(cli: click.Group) -> None:
    cli.add_command(fixtures)
