"""Choosing an archive provider: ``--provider NAME`` or ``auto``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from lanspread_core.archive.protocol import ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.errors import (
    ArchiveError,
    NoProviderCanHandle,
    PluginError,
    ProviderNotFound,
    UsageError,
)
from lanspread_core.plugin.registry import Registry

AUTO = "auto"
ENV_PROVIDER = "LANSPREAD_PROVIDER"


@dataclass(frozen=True)
class Choice:
    name: str
    provider: ArchiveProvider
    probe: ProbeResult


def installed_names(registry: Registry) -> str:
    return ", ".join(sorted(registry.providers)) or "none"


def build_provider(registry: Registry, name: str) -> ArchiveProvider:
    """Instantiate the provider called ``name`` or explain what to install."""
    record = registry.providers.get(name)
    if record is None:
        # no package name is guessed: a plugin's distribution is named by its author
        raise ProviderNotFound(
            f"provider {name!r} is not installed (installed: {installed_names(registry)});"
            " 'lanspread plugins' shows what each one reads"
        )
    try:
        # plugin code, untyped at this boundary; the record promises an ArchiveProvider
        provider: ArchiveProvider = record.factory()
    except PluginError as exc:
        raise PluginError(f"provider {name!r} cannot be used: {exc}") from exc
    return provider


def _probe(provider: ArchiveProvider, archives: Sequence[Path]) -> ProbeResult:
    try:
        return provider.probe(archives)
    except ArchiveError as exc:
        return ProbeResult(ok=False, reason=str(exc))


def choose(registry: Registry, name: str, archives: Sequence[Path]) -> Choice:
    """Pick the provider for ``archives``: the named one, or the first that can.

    ``auto`` tries providers in sorted name order so the choice is repeatable.
    A named provider that declines raises with its reason; when ``auto`` finds
    none, the message gives every provider's reason.
    """
    if not archives:
        raise UsageError("there are no archives to read (a game root holds *.eti files)")
    if name != AUTO:
        provider = build_provider(registry, name)
        probe = _probe(provider, archives)
        if not probe.ok:
            raise NoProviderCanHandle(f"provider {name!r} cannot handle this: {probe.reason}")
        return Choice(name, provider, probe)
    if not registry.providers:
        raise NoProviderCanHandle(
            "no archive provider is installed; 'make setup' in the Lanspread folder"
            " installs the built-in ones (unrar, libarchive)"
        )
    reasons = []
    for pname in sorted(registry.providers):
        try:
            provider = registry.providers[pname].factory()
        except PluginError as exc:  # a provider whose library is missing declines, with why
            reasons.append(f"{pname}: {exc}")
            continue
        probe = _probe(provider, archives)
        if probe.ok:
            return Choice(pname, provider, probe)
        reasons.append(f"{pname}: {probe.reason}")
    raise NoProviderCanHandle("no installed provider can handle this; " + "; ".join(reasons))


def readers(registry: Registry, archives: Sequence[Path]) -> list[str]:
    """The installed providers that say they can read ``archives`` (a cheap probe
    each; one whose library is missing is left out), in sorted order."""
    found = []
    for pname in sorted(registry.providers):
        try:
            provider = registry.providers[pname].factory()
        except PluginError:
            continue
        if _probe(provider, archives).ok:
            found.append(pname)
    return found


def chosen_name(registry: Registry, name: str, archives: Sequence[Path]) -> str | None:
    """The provider ``name`` (or ``auto``) stands for on ``archives``; None when none can."""
    if name != AUTO:
        return name
    try:
        return choose(registry, AUTO, archives).name
    except (NoProviderCanHandle, UsageError):
        return None
