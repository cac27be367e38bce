"""The named records that hooks return: a name, what it can do, and a factory.

Hooks register; they never do the work. The work lives in whatever the
factory builds. Records validate themselves so a plugin with a bad name fails
at start-up, not in the middle of an install.

Every ``lanspread`` command loads every plugin, so a factory given as
``lazy("module:attr")`` keeps the provider's module (and the libraries it
wraps: zeroconf, libarchive, the unrar library) out of commands that never
build one, such as ``--help`` and ``plugins``.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lanspread_core.errors import PluginError

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_TARGET = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class LazyFactory:
    """A factory that imports ``module:attr`` on its first call, then calls it.

    The import happens once; a failed import is tried again on the next call
    (a user may install the missing library while the peer runs).
    """

    def __init__(self, target: str) -> None:
        if not _TARGET.match(target):
            raise ValueError(f"lazy factory {target!r} must look like 'package.module:attribute'")
        self.target = target
        self._resolved: Callable[..., Any] | None = None

    def resolve(self) -> Callable[..., Any]:
        """Import the target and return it (a class or a function)."""
        if self._resolved is not None:
            return self._resolved
        module_name, _, attr = self.target.partition(":")
        try:
            found: Any = importlib.import_module(module_name)
            for part in attr.split("."):
                found = getattr(found, part)
        except (ImportError, AttributeError, OSError) as exc:
            # libarchive-c raises OSError when the system libarchive is missing
            raise PluginError(
                f"cannot load {self.target!r} ({exc}); reinstall the plugin that provides it"
            ) from exc
        if not callable(found):
            raise PluginError(f"lazy factory {self.target!r} names something that is not callable")
        resolved: Callable[..., Any] = found
        self._resolved = resolved
        return resolved

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.resolve()(*args, **kwargs)

    def __repr__(self) -> str:
        return f"lazy({self.target!r})"


def lazy(target: str) -> LazyFactory:
    """A record factory that imports ``"package.module:attribute"`` only when first called.

    Example: ``ProviderRecord(name="tar", factory=lazy("lanspread_tar.provider:TarProvider"))``.
    """
    return LazyFactory(target)


@dataclass(frozen=True)
class _Record:
    name: str
    factory: Callable[..., Any]
    description: str = ""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(
                f"plugin record name {self.name!r} must be lower-case letters, digits, '-' or '_'"
            )
        if not callable(self.factory):
            raise TypeError(f"plugin record {self.name!r}: factory must be callable")


@dataclass(frozen=True)
class ProviderRecord(_Record):
    """An archive provider: ``factory()`` returns an object implementing
    :class:`~lanspread_core.archive.protocol.StreamInstallProvider` and
    :class:`~lanspread_core.archive.protocol.Unpacker` (derive from
    :class:`~lanspread_core.archive.protocol.ArchiveProvider` to get ``unpack`` free).

    :param handles: what it reads, in words (``"rar5"``, ``"solid"``, ...).
    :param kinds: ``unpacker`` and/or ``stream``.
    """

    handles: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ("unpacker", "stream")

    def __post_init__(self) -> None:
        super().__post_init__()
        bad = set(self.kinds) - {"unpacker", "stream"}
        if bad or not self.kinds:
            raise ValueError(f"provider {self.name!r}: kinds must be 'unpacker' and/or 'stream'")


@dataclass(frozen=True)
class DiscoveryRecord(_Record):
    """A discovery backend: ``factory(config)`` returns a backend object."""


@dataclass(frozen=True)
class FrontendRecord(_Record):
    """A front-end: ``factory(config)`` returns an object that drives a peer."""


@dataclass(frozen=True)
class PackerRecord(_Record):
    """A packer for ``lanspread pack``: ``factory()`` returns an object implementing
    :class:`~lanspread_core.archive.packer.Packer`.

    :param format: what it writes, in words (``"zip (stored)"``); an installed
        provider must read it, which ``pack`` checks on every archive it makes.
    """

    format: str = ""


@dataclass(frozen=True)
class PluginInfo:
    """Where a registered plugin came from, for ``lanspread plugins``."""

    name: str
    distribution: str
    version: str
    kinds: list[str] = field(default_factory=list)
