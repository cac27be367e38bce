"""Loading plugins from the ``lanspread`` entry-point group into one registry.

Built-ins are registered exactly like outside plugins: the core's own
``pyproject.toml`` declares them in the same group. A third-party plugin that
fails to import costs one warning line; a duplicate name or a misspelled
hook is an error, because it would silently pick the wrong code.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import pluggy

from lanspread_core.errors import PluginError
from lanspread_core.plugin import hookspecs
from lanspread_core.plugin.records import (
    DiscoveryRecord,
    FrontendRecord,
    PackerRecord,
    PluginInfo,
    ProviderRecord,
    _Record,
)

log = logging.getLogger(__name__)

GROUP = hookspecs.PROJECT
#: Comma-separated entry-point names to load; unset loads all, "" loads none.
ENV_LOAD = "LANSPREAD_LOAD_PLUGINS"


@dataclass
class Registry:
    """Everything the installed plugins registered, by kind and by name."""

    pm: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    providers: dict[str, ProviderRecord] = field(default_factory=dict)
    discovery: dict[str, DiscoveryRecord] = field(default_factory=dict)
    frontends: dict[str, FrontendRecord] = field(default_factory=dict)
    packers: dict[str, PackerRecord] = field(default_factory=dict)
    owners: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _warn(registry: Registry, message: str) -> None:
    registry.warnings.append(message)
    log.debug(message)


def _wanted(eps: Iterable[EntryPoint]) -> list[EntryPoint]:
    selected = os.environ.get(ENV_LOAD)
    if selected is None:
        return list(eps)
    names = {n.strip() for n in selected.split(",") if n.strip()}
    return [ep for ep in eps if ep.name in names]


_KINDS: tuple[tuple[str, str, type[_Record], str], ...] = (
    ("lanspread_providers", "provider", ProviderRecord, "providers"),
    ("lanspread_discovery_backends", "discovery", DiscoveryRecord, "discovery"),
    ("lanspread_frontends", "frontend", FrontendRecord, "frontends"),
    ("lanspread_packers", "packer", PackerRecord, "packers"),
)


def _collect(registry: Registry) -> None:
    """Call each record hook once per plugin, so every record knows its owner."""
    infos = {p.name: p for p in registry.plugins}
    for hook_name, kind, expected, attr in _KINDS:
        table: dict[str, _Record] = getattr(registry, attr)
        for impl in reversed(getattr(registry.pm.hook, hook_name).get_hookimpls()):
            owner = impl.plugin_name
            try:
                records = list(impl.function() or ())
            except Exception as exc:  # a broken plugin costs a warning, not the peer
                _warn(registry, f"plugin {owner!r} failed in {hook_name} and is skipped: {exc}")
                continue
            for record in records:
                if not isinstance(record, expected):
                    raise PluginError(
                        f"plugin {owner!r} returned {record!r} from {hook_name},"
                        f" not a {expected.__name__}"
                    )
                key = f"{kind}:{record.name}"
                if record.name in table:
                    raise PluginError(
                        f"plugins {registry.owners[key]!r} and {owner!r} both register a"
                        f" {kind} named {record.name!r}; uninstall one of them"
                    )
                table[record.name] = record
                registry.owners[key] = owner
                info = infos.get(owner)
                if info is not None and kind not in info.kinds:
                    info.kinds.append(kind)
    for impl in registry.pm.hook.lanspread_register_commands.get_hookimpls():
        info = infos.get(impl.plugin_name)
        if info is not None:
            info.kinds.append("commands")


def load_registry(extra: Iterable[tuple[str, ModuleType | object]] = ()) -> Registry:
    """Build a fresh plugin manager, load the entry-point group and collect records.

    :param extra: ``(name, plugin)`` pairs registered as well (tests use this).
    """
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    registry = Registry(pm=pm)
    for ep in _wanted(entry_points(group=GROUP)):
        dist = ep.dist.name if ep.dist else "?"
        version = ep.dist.version if ep.dist else "?"
        try:
            module = ep.load()
        except Exception as exc:  # a broken third-party plugin must not stop the peer
            _warn(registry, f"plugin {ep.name!r} from {dist} failed to load and is skipped: {exc}")
            continue
        if pm.is_registered(module) or pm.get_plugin(ep.name) is not None:
            raise PluginError(f"two plugins are installed under the name {ep.name!r}")
        pm.register(module, name=ep.name)
        registry.plugins.append(PluginInfo(ep.name, dist, version))
    for name, plugin in extra:
        pm.register(plugin, name=name)
        registry.plugins.append(PluginInfo(name, "(in-process)", "-"))
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"a plugin implements a hook that does not exist: {exc}") from exc
    _collect(registry)
    return registry
