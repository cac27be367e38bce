"""The named records that hooks return: a name, what it can do, and a factory.

Hooks register; they never do the work. The work lives in whatever the
factory builds. Records validate themselves so a plugin with a bad name fails
at start-up, not in the middle of an install.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")


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
class PluginInfo:
    """Where a registered plugin came from, for ``lanspread plugins``."""

    name: str
    distribution: str
    version: str
    kinds: list[str] = field(default_factory=list)
