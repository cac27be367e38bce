"""Have-maps: which chunks of a manifest a downloading peer holds, verified.

A have-map is a bitmap over the manifest's chunks in manifest order (bit
``i`` of byte ``i // 8``, least significant bit first), sent as base64 in a
:class:`~lanspread_core.wire.messages.GameInfo`. The empty string means
"every chunk": a peer that holds the whole, verified game. With 4 MiB chunks a
50 GiB game has 12,800 chunks: 1,600 bytes of bitmap, 2,136 characters of
base64, so even a snapshot listing many partial games stays small.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable

from lanspread_core.wire.errors import MalformedMessage

#: the have-map of a peer that holds every chunk
FULL = ""
#: the longest have-map accepted: 1 TiB of 4 MiB chunks
MAX_CHARS = 4 * ((256 * 1024 // 8 + 2) // 3)


def encode(chunks: Iterable[int], count: int) -> str:
    """The have-map of ``chunks`` (indices below ``count``)."""
    bits = bytearray((count + 7) // 8)
    for i in chunks:
        if not 0 <= i < count:
            raise ValueError(f"chunk {i} is not one of {count}")
        bits[i >> 3] |= 1 << (i & 7)
    return base64.b64encode(bytes(bits)).decode("ascii")


def decode(text: str, count: int) -> frozenset[int] | None:
    """The chunk indices a have-map names; None for :data:`FULL` (all of them).

    :raises MalformedMessage: not base64, or not a bitmap of ``count`` chunks.
    """
    if text == FULL:
        return None
    if len(text) > MAX_CHARS:
        raise MalformedMessage("a have-map is longer than any game")
    try:
        bits = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise MalformedMessage("a have-map must be base64") from None
    if len(bits) != (count + 7) // 8:
        raise MalformedMessage(f"a have-map of {len(bits)} bytes does not fit {count} chunks")
    return frozenset(
        (i << 3) + b for i, byte in enumerate(bits) if byte for b in range(8) if byte >> b & 1
    )
