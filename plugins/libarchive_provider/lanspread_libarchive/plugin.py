"""The entry point the core loads: registers the libarchive provider, nothing more.

Kept apart from the provider, with a factory that imports it only when first
called, so loading the plugin list never loads libarchive; the work lives in
:class:`LibarchiveProvider`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from lanspread_core import ProviderRecord, hookimpl
from lanspread_core.errors import PluginError

if TYPE_CHECKING:
    from lanspread_libarchive.provider import LibarchiveProvider

#: What installs the system library libarchive-c loads, on Debian and Ubuntu.
SYSTEM_PACKAGE = "libarchive13"


def make_provider() -> LibarchiveProvider:
    """The provider; the system libarchive loads here, and its absence is one sentence."""
    try:
        from lanspread_libarchive.provider import LibarchiveProvider
    except OSError as exc:  # libarchive-c could not load the shared library
        raise PluginError(
            f"the libarchive library is not installed on this system ({exc});"
            f" install it (Debian and Ubuntu: sudo apt-get install {SYSTEM_PACKAGE})"
        ) from None
    return LibarchiveProvider()


@hookimpl
def lanspread_providers() -> list[ProviderRecord]:
    return [
        ProviderRecord(
            name="libarchive",
            factory=make_provider,
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
