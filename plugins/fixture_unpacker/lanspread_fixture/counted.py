"""Writing a member whose size is promised before its bytes are generated."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import BinaryIO


def write_counted(fh: BinaryIO, name: str, size: int, chunks: Iterable[bytes]) -> int:
    """Write ``chunks`` to ``fh``; they must add up to exactly ``size``. Returns their CRC32.

    Both archive writers put the size in a header before the data and patch
    the CRC in afterwards, so a generator that yields more or less than it
    promised must fail loudly rather than write a corrupt archive.
    """
    crc = 0
    written = 0
    for chunk in chunks:
        view = memoryview(chunk)
        written += len(view)
        if written > size:
            raise ValueError(f"{name!r}: chunks yield more than the promised {size} bytes")
        crc = zlib.crc32(view, crc)
        fh.write(view)
    if written != size:
        raise ValueError(f"{name!r}: chunks yield {written} bytes, not the promised {size}")
    return crc
