"""Lanspread core: hook specs, archive provider protocols, runtime and CLI."""

from __future__ import annotations

import pluggy

from lanspread_core.archive.packer import Packer, PackItem
from lanspread_core.archive.protocol import (
    ArchiveReader,
    Entry,
    EntryKind,
    EntrySink,
    ProbeResult,
    StreamInstallProvider,
    Unpacker,
)
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.errors import (
    ArchiveError,
    Cancelled,
    LanspreadError,
    UnsafeEntryError,
    VerificationError,
)
from lanspread_core.plugin.records import (
    DiscoveryRecord,
    FrontendRecord,
    PackerRecord,
    ProviderRecord,
    lazy,
)

hookimpl = pluggy.HookimplMarker("lanspread")
__version__ = "0.1.0"

__all__ = [
    "ArchiveError",
    "ArchiveProvider",
    "ArchiveReader",
    "Cancelled",
    "DiscoveryRecord",
    "Entry",
    "EntryKind",
    "EntrySink",
    "FrontendRecord",
    "LanspreadError",
    "PackItem",
    "Packer",
    "PackerRecord",
    "ProbeResult",
    "ProviderRecord",
    "StreamInstallProvider",
    "Unpacker",
    "UnsafeEntryError",
    "VerificationError",
    "hookimpl",
    "lazy",
]
