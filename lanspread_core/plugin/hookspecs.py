"""The hooks a Lanspread plugin may implement.

Every hook is synchronous and returns records; the work happens in the
objects the records' factories build (async where it must be).
"""

from __future__ import annotations

from collections.abc import Iterable

import click
import pluggy

from lanspread_core.plugin.records import (
    DiscoveryRecord,
    FrontendRecord,
    PackerRecord,
    ProviderRecord,
)

PROJECT = "lanspread"
_spec = pluggy.HookspecMarker(PROJECT)


@_spec
def lanspread_providers() -> Iterable[ProviderRecord]:
    """Register archive providers (unpackers and stream-install providers).

    :return: provider records; names must be unique across all plugins.

    Example::

        from lanspread_core import ArchiveProvider, ProviderRecord, hookimpl

        class TarProvider(ArchiveProvider):
            ...

        @hookimpl
        def lanspread_providers():
            return [ProviderRecord(name="tar", factory=TarProvider, handles=("tar",))]

    A provider that wraps a slow-to-import library registers
    ``factory=lazy("lanspread_tar.provider:TarProvider")`` instead, so commands
    that never build a provider (``--help``, ``plugins``) never import it.
    """


@_spec
def lanspread_discovery_backends() -> Iterable[DiscoveryRecord]:
    """Register discovery backends (how peers find each other).

    :return: discovery records; the factory takes the peer's config.

    Example::

        @hookimpl
        def lanspread_discovery_backends():
            return [
                DiscoveryRecord(
                    name="static", factory=lazy("lanspread_core.discovery.static:StaticDiscovery")
                )
            ]
    """


@_spec
def lanspread_frontends() -> Iterable[FrontendRecord]:
    """Register front-ends (what drives a running peer and shows its events).

    :return: front-end records; the factory takes the peer's config.

    Example::

        @hookimpl
        def lanspread_frontends():
            return [
                FrontendRecord(
                    name="jsonl", factory=lazy("lanspread_core.frontends.jsonl:JsonlFrontend")
                )
            ]
    """


@_spec
def lanspread_packers() -> Iterable[PackerRecord]:
    """Register packers: formats ``lanspread pack --packer NAME`` writes a game root in.

    :return: packer records; the factory takes no arguments and returns a
        :class:`~lanspread_core.archive.packer.Packer`. The core walks the
        folder, splits it into volumes and checks every archive through the
        installed providers, so a packer only writes one archive at a time.

    Example::

        from lanspread_core import PackerRecord, hookimpl, lazy

        @hookimpl
        def lanspread_packers():
            return [
                PackerRecord(
                    name="tar",
                    factory=lazy("lanspread_tar.packer:TarPacker"),
                    format="tar",
                )
            ]
    """


@_spec
def lanspread_register_commands(cli: click.Group) -> None:
    """Add commands to the ``lanspread`` command line.

    :param cli: the top-level click group; call ``cli.add_command(...)``.

    Example::

        @hookimpl
        def lanspread_register_commands(cli):
            @cli.command()
            def hello():
                click.echo("hello")
    """
