"""Registers the ``unrar`` provider; the lazy factory keeps rarfile and the unrar
library out of every command that does not unpack.
"""

from __future__ import annotations

from lanspread_core import ProviderRecord, hookimpl, lazy


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="unrar",
            factory=lazy("lanspread_unrar.provider:UnrarProvider"),
            description="RAR 3 and RAR 5 archives, solid and multi-volume, via the unrar library",
            handles=("rar3", "rar5", "solid", "multi-volume"),
        )
    ]
