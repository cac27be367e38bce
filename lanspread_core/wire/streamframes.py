"""The stream-install frames on the TCP data plane (documented in docs/protocol.md).

After the usual status frame, the sender writes frames, each a 1-byte type, a
4-byte big-endian payload length and the payload:

* ``E`` entries (JSON ``{"format", "entries": [Entry…]}``), exactly once, first;
* per archive entry, in archive order: ``H`` header (JSON Entry), then for a file
  any number of ``D`` data frames (raw bytes, at most 1 MiB each), then ``F``
  file end (JSON ``{"crc32": "hex8"}``: the CRC32 of the bytes sent);
* ``Z`` the end (JSON ``{"files": n, "bytes": n}``), or ``X`` an error
  (JSON ``{"error": "sentence"}``) when the sender's provider failed.

Anything else — an unknown type, a frame over its cap, a data frame outside a
file, bytes past a file's declared size, a connection that ends before ``Z``,
a JSON frame that is not an object or holds a field of the wrong type — ends
the stream with :class:`StreamError`, so the receiver tries the next peer.
So does a sender that sends nothing for :data:`STALL_TIMEOUT` seconds. The
reader wakes every fraction of a second (the socket's receive timeout) to look
at its ``cancel`` event, so a stop does not wait for a silent sender.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from typing import Any, TypeVar

from lanspread_core.errors import Cancelled, LanspreadError

ENTRIES, HEADER, DATA, FILE_END, END, ERROR = b"E", b"H", b"D", b"F", b"Z", b"X"
MAX_DATA = 1 << 20
MAX_JSON = 8 << 20
#: Seconds a sender may send nothing before the stream fails.
STALL_TIMEOUT = 30.0
_HEAD = struct.Struct(">cI")
T = TypeVar("T")


class StreamError(LanspreadError):
    """The stream is malformed, truncated, or the sender reported a failure."""


def frame(kind: bytes, payload: bytes | memoryview) -> list[bytes | memoryview]:
    return [_HEAD.pack(kind, len(payload)), payload]


def json_frame(kind: bytes, obj: Any) -> bytes:
    payload = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()
    return _HEAD.pack(kind, len(payload)) + payload


class FrameReader:
    """Reads frames from a blocking socket into one reusable buffer.

    Give the socket a short receive timeout: each time a read times out,
    ``cancel`` is looked at and the stall clock compared with ``timeout``.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        cancel: threading.Event | None = None,
        timeout: float = STALL_TIMEOUT,
    ) -> None:
        self.sock = sock
        self._cancel = cancel
        self._timeout = timeout
        self._head = bytearray(_HEAD.size)
        self._buf = bytearray(MAX_DATA)

    def _fill(self, view: memoryview) -> None:
        last = time.monotonic()
        while view:
            try:
                n = self.sock.recv_into(view, len(view), socket.MSG_WAITALL)
            except (BlockingIOError, TimeoutError, InterruptedError):  # nothing this poll
                n = -1
            if n == 0:
                raise StreamError("the sender ended the stream early (truncated)")
            if n > 0:
                view = view[n:]
                last = time.monotonic()
                continue
            if self._cancel is not None and self._cancel.is_set():
                raise Cancelled("the stream-install was cancelled")
            if time.monotonic() - last > self._timeout:
                raise StreamError(f"the sender sent nothing for {self._timeout:g} s")

    def next(self) -> tuple[bytes, memoryview]:
        """The next frame's type and payload (valid until the next call)."""
        self._fill(memoryview(self._head))
        kind, length = _HEAD.unpack(self._head)
        cap = MAX_DATA if kind == DATA else MAX_JSON
        if kind not in (ENTRIES, HEADER, DATA, FILE_END, END, ERROR):
            raise StreamError(f"unknown stream frame type {kind!r}")
        if length > cap:
            raise StreamError(f"a {kind.decode()} frame of {length} bytes is over its cap")
        if length > len(self._buf):
            self._buf = bytearray(length)
        view = memoryview(self._buf)[:length]
        self._fill(view)
        return kind, view

    def json(self, payload: memoryview) -> dict[str, Any]:
        """A JSON frame's payload, which must be an object.

        :raises StreamError: not JSON, nested too deeply, or not an object.
        """
        try:
            obj = json.loads(bytes(payload))
        except RecursionError:
            raise StreamError("a stream frame is nested too deeply") from None
        except ValueError as exc:
            raise StreamError(f"a stream frame is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise StreamError(f"a stream frame is {type(obj).__name__}, not an object")
        return obj


def field(obj: dict[str, Any], name: str, kind: type[T]) -> T:
    """``obj[name]`` when it is a ``kind`` (a bool is no int), else :class:`StreamError`."""
    value = obj.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        got = "missing" if value is None else type(value).__name__
        raise StreamError(f"a stream frame's {name!r} is not {kind.__name__} ({got})")
    return value


def crc32_of(value: Any) -> int:
    """A CRC32 as the frames carry it: 8 hex digits."""
    if not isinstance(value, str) or len(value) != 8:
        raise StreamError(f"a CRC32 must be 8 hex digits, not {type(value).__name__}")
    try:
        return int(value, 16)
    except ValueError:
        raise StreamError("a CRC32 must be 8 hex digits") from None
