"""Registers the ``unrar`` provider; kept tiny so loading plugins stays cheap."""

from __future__ import annotations

from lanspread_core import ProviderRecord, hookimpl
from lanspread_unrar.provider import UnrarProvider


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="unrar",
            factory=UnrarProvider,
            description="RAR 3 and RAR 5 archives, solid and multi-volume, via the unrar library",
            handles=("rar3", "rar5", "solid", "multi-volume"),
        )
    ]
