"""Just enough BitTorrent metadata for the swarm baseline: bencode and a .torrent maker."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: the usual piece size for a torrent of a few tens of MiB (mktorrent's default too)
PIECE_LENGTH = 256 * 1024


def bencode(value: Any) -> bytes:
    """BitTorrent's encoding of ints, bytes/str, lists and dicts (keys sorted as bytes)."""
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list | tuple):
        return b"l" + b"".join(bencode(v) for v in value) + b"e"
    if isinstance(value, dict):
        items = sorted((k.encode() if isinstance(k, str) else k, v) for k, v in value.items())
        return b"d" + b"".join(bencode(k) + bencode(v) for k, v in items) + b"e"
    raise TypeError(f"cannot bencode {type(value).__name__}")


def bdecode(data: bytes) -> Any:
    """The inverse of :func:`bencode` (strings stay bytes); raises ValueError on bad input."""

    def parse(i: int) -> tuple[Any, int]:
        head = data[i : i + 1]
        if head == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1 : end]), end + 1
        if head in (b"l", b"d"):
            items: list[Any] = []
            i += 1
            while data[i : i + 1] != b"e":
                if i >= len(data):
                    raise ValueError("bencoded data ends inside a list or dict")
                item, i = parse(i)
                items.append(item)
            if head == b"l":
                return items, i + 1
            return dict(zip(items[::2], items[1::2], strict=True)), i + 1
        if head.isdigit():
            colon = data.index(b":", i)
            start = colon + 1
            end = start + int(data[i:colon])
            if end > len(data):
                raise ValueError("bencoded string runs past the end")
            return data[start:end], end
        raise ValueError(f"bad bencoded data at byte {i}")

    value, end = parse(0)
    if end != len(data):
        raise ValueError("trailing bytes after bencoded data")
    return value


def make_torrent(
    root: Path, files: Sequence[Path], announce: str, piece_length: int = PIECE_LENGTH
) -> tuple[bytes, bytes]:
    """A multi-file torrent named ``root.name`` holding ``files`` (under ``root``, in order).

    Returns the .torrent's bytes and its 20-byte info hash.
    """
    pieces = bytearray()
    buf = bytearray()
    entries = []
    for path in files:
        entries.append({"length": path.stat().st_size, "path": list(path.relative_to(root).parts)})
        with path.open("rb") as f:
            while block := f.read(1 << 20):
                buf += block
                while len(buf) >= piece_length:
                    pieces += hashlib.sha1(buf[:piece_length]).digest()
                    del buf[:piece_length]
    if buf:
        pieces += hashlib.sha1(buf).digest()
    info = {
        "name": root.name,
        "piece length": piece_length,
        "pieces": bytes(pieces),
        "files": entries,
    }
    torrent = bencode({"announce": announce, "info": info})
    return torrent, hashlib.sha1(bencode(info)).digest()
