"""The entry point the core loads: registers the libarchive provider, nothing more.

Kept apart from the provider, with a lazy factory, so loading the plugin list
never loads libarchive; the work lives in :class:`LibarchiveProvider`.
"""

from __future__ import annotations

from lanspread_core import ProviderRecord, hookimpl, lazy


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="libarchive",
            factory=lazy("lanspread_libarchive.provider:LibarchiveProvider"),
            description="anything libarchive reads, in one pass (no solid RAR3)",
            handles=(
                "rar5",
                "rar5 solid",
                "rar3 (not solid)",
                "multi-volume rar",
                "zip",
                "7z",
                "tar",
                "tar.gz",
                "tar.bz2",
                "tar.xz",
                "tar.zst",
                "cpio",
                "iso9660",
                "cab",
                "lha",
                "xar",
            ),
        )
    ]
