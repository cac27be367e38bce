"""The built-in packer, registered like any plugin's (entry point ``packers``).

It lives above ``archive`` because registering needs the records; the packer
itself is :mod:`lanspread_core.archive.zippacker`, loaded only by ``pack``.
"""

from __future__ import annotations

from lanspread_core import hookimpl
from lanspread_core.plugin.records import PackerRecord, lazy


@hookimpl
def lanspread_packers() -> list[PackerRecord]:
    return [
        PackerRecord(
            name="zip",
            factory=lazy("lanspread_core.archive.zippacker:ZipPacker"),
            description="zip, every file stored as it is: fast, read by the libarchive provider",
            format="zip (stored)",
        )
    ]
