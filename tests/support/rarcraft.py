"""Crafting small RAR archives the fixtures lack: encrypted, linked, odd names.

There is no ``rar`` tool on Debian main, so these stored-mode archives are
built byte by byte from the RAR 5.0 and 3.x format descriptions.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zlib

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

RAR5_SIG = b"Rar!\x1a\x07\x01\x00"
PASSWORD = "secret"


def vint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def rar5_block(body: bytes) -> bytes:
    data = vint(len(body)) + body
    return struct.pack("<I", zlib.crc32(data)) + data


def aes_cbc(key: bytes, iv: bytes, data: bytes) -> bytes:
    data += b"\0" * (-len(data) % 16)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    return enc.update(data) + enc.finalize()


def rar5(
    files: list[tuple[str, bytes]],
    *,
    password: str | None = None,
    encrypt_headers: bool = False,
    redirect: tuple[int, str] | None = None,
) -> bytes:
    """A stored RAR 5 archive; ``password`` encrypts file data (AES-256), and
    headers too with ``encrypt_headers``; ``redirect`` = (type, target) makes
    every entry a redirection (1 symlink, 4 hard link)."""
    kdf, salt = 10, b"s" * 16
    key = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1 << kdf, 32) if password else b""
    out = bytearray(RAR5_SIG)

    def emit(block: bytes) -> None:
        if encrypt_headers:
            iv = os.urandom(16)
            out.extend(iv + aes_cbc(key, iv, block))
        else:
            out.extend(block)

    if encrypt_headers:
        out += rar5_block(vint(4) + vint(0) + vint(0) + vint(0) + bytes([kdf]) + salt)
    emit(rar5_block(vint(1) + vint(0) + vint(0)))
    for name, payload in files:
        extra, data = b"", payload
        if password:
            iv = b"i" * 16
            record = vint(1) + vint(0) + vint(0) + bytes([kdf]) + salt + iv
            extra += vint(len(record)) + record
            data = aes_cbc(key, iv, payload)
        if redirect:
            target = redirect[1].encode()
            record = vint(5) + vint(redirect[0]) + vint(0) + vint(len(target)) + target
            extra += vint(len(record)) + record
            data = payload = b""
        raw = name.encode()
        fields = (
            vint(0x0004)  # CRC32 present
            + vint(len(payload))
            + vint(0o120777 if redirect else 0o644)
            + struct.pack("<I", zlib.crc32(payload))
            + vint(0)  # stored
            + vint(1)  # Unix
            + vint(len(raw))
            + raw
        )
        flags = 0x0002 | (0x0001 if extra else 0)
        sizes = (vint(len(extra)) if extra else b"") + vint(len(data))
        emit(rar5_block(vint(2) + vint(flags) + sizes + fields + extra))
        out += data
    emit(rar5_block(vint(5) + vint(0) + vint(0)))
    return bytes(out)


def rar3_unicode_name(name: str) -> bytes:
    """A RAR 3 name field with the Unicode flag: an ASCII stand-in, NUL, the
    UTF-16 units in RAR's compressed form (every unit as a two-byte literal),
    as RAR writes a name it cannot store in the OEM code page."""
    units = name.encode("utf-16-le")
    out = bytearray(name.encode("ascii", "replace") + b"\0" + b"\0")  # high byte 0
    for i in range(0, len(units), 8):
        out.append(0xAA)  # four 2-bit flags, each 2: a two-byte literal follows
        out += units[i : i + 8]
    return bytes(out)


def rar3(files: list[tuple[str, bytes, int, int]]) -> bytes:
    """A stored RAR 3 archive of (name, payload, host OS, attributes); a name
    beyond ASCII is stored in RAR's Unicode form (characters outside the Basic
    Multilingual Plane as UTF-16 surrogate pairs, as RAR itself stores them)."""

    def block(htype: int, flags: int, body: bytes) -> bytes:
        rest = struct.pack("<BHH", htype, flags, 7 + len(body)) + body
        return struct.pack("<H", zlib.crc32(rest) & 0xFFFF) + rest

    out = bytearray(b"Rar!\x1a\x07\x00") + block(0x73, 0, b"\0" * 6)
    for name, payload, host, attr in files:
        unicode = not name.isascii()
        raw = rar3_unicode_name(name) if unicode else name.encode()
        size, crc = len(payload), zlib.crc32(payload)
        body = struct.pack("<IIBIIBBHI", size, size, host, crc, 0, 29, 0x30, len(raw), attr)
        flags = 0x8000 | (0x0200 if unicode else 0)  # LONG_BLOCK, UNICODE name
        out += block(0x74, flags, body + raw) + payload
    return bytes(out + block(0x7B, 0x4000, b""))
