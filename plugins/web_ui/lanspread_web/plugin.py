"""Registers the ``web`` front-end and its options on ``lanspread run``.

Loaded by every ``lanspread`` command, so it imports nothing but click and
the core's plugin API: Starlette and uvicorn load only when a peer starts
with ``--ui web`` (the factory is lazy).
"""

from __future__ import annotations

import click

from lanspread_core import FrontendRecord, hookimpl, lazy

#: the page's port unless --web-listen says otherwise
DEFAULT_PORT = 47080


@hookimpl
def lanspread_frontends() -> list[FrontendRecord]:
    return [
        FrontendRecord(
            name="web",
            factory=lazy("lanspread_web.frontend:WebFrontend"),
            description="the party's page in a browser, served by the peer (--web-listen, --open)",
        )
    ]


OPTIONS = (
    click.Option(
        ["--web-listen"],
        default=f"127.0.0.1:{DEFAULT_PORT}",
        show_default=True,
        help="Where the web page (--ui web) is served. A non-loopback address also"
        " needs --web-lan.",
    ),
    click.Option(
        ["--web-lan"],
        is_flag=True,
        help="Allow --web-listen on a LAN address: anyone on the network with the"
        " printed link can then drive this peer.",
    ),
    click.Option(
        ["--open", "open_browser"],
        is_flag=True,
        help="Open the web page (--ui web) in the default browser.",
    ),
)


@hookimpl
def lanspread_register_commands(cli: click.Group) -> None:
    """``--web-listen``, ``--web-lan`` and ``--open`` on the commands that start a peer."""
    for name in ("run", "peer"):
        command = cli.commands.get(name)
        if command is not None:
            known = {p.name for p in command.params}
            command.params.extend(o for o in OPTIONS if o.name not in known)
