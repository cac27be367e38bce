"""Frames: a 4-byte big-endian unsigned length, then that many bytes of UTF-8 JSON.

The payload is one JSON object. :data:`MAX_FRAME` caps the payload at 8 MiB:
the largest message is a game manifest at ~67 bytes of JSON per 4 MiB chunk
(about 1.7 MB for a 100 GiB game, see :mod:`lanspread_core.library.manifest`), so the
cap leaves room for games of several hundred GiB while bounding what one
stream can make a peer buffer. A declared length above the cap is refused as
soon as the 4 header bytes arrive, before any of the body is buffered.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from typing import Any, NoReturn

from lanspread_core.wire.errors import FrameTooLarge, MalformedMessage

MAX_FRAME = 8 * 1024 * 1024
HEADER = struct.Struct(">I")


def dumps(obj: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON for one message object (no NaN or Infinity)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()


def loads(payload: bytes) -> dict[str, Any]:
    """Parse one frame's payload, which must be a UTF-8 JSON object.

    :raises MalformedMessage: not UTF-8, not JSON, nested too deeply, or not an object.
    """
    try:
        obj = json.loads(payload.decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise MalformedMessage("the message is not valid UTF-8") from None
    except RecursionError:
        raise MalformedMessage("the message's JSON nests too deeply") from None
    except ValueError as exc:  # JSONDecodeError, or an integer with too many digits
        raise MalformedMessage(f"the message is not valid JSON ({_first_line(exc)})") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(f"a message must be a JSON object, not {_json_kind(obj)}")
    return obj


def encode_frame(obj: Mapping[str, Any], *, max_frame: int = MAX_FRAME) -> bytes:
    """Header plus JSON payload for ``obj``.

    :raises FrameTooLarge: the payload would exceed ``max_frame`` bytes.
    """
    payload = dumps(obj)
    if len(payload) > max_frame:
        raise FrameTooLarge(
            f"a message of {len(payload)} bytes exceeds the {max_frame}-byte frame limit"
        )
    return HEADER.pack(len(payload)) + payload


class FrameDecoder:
    """Incremental decoder: feed bytes as they arrive, get whole frames out.

    Holds at most one partial frame (header plus at most ``max_frame`` bytes).
    After it raised, the decoder is spent: it refuses further input.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self._max = max_frame
        self._buf = bytearray()
        self._need: int | None = None  # payload length once the header is in
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes held for a frame not yet complete."""
        return len(self._buf)

    def feed_raw(self, data: bytes) -> list[bytes]:
        """Add ``data``; return the payloads of the frames it completed.

        :raises FrameTooLarge: a header declares more than ``max_frame`` bytes.
        """
        if self._failed:
            raise MalformedMessage("the frame decoder already failed")
        self._buf += data
        out: list[bytes] = []
        while True:
            if self._need is None:
                if len(self._buf) < HEADER.size:
                    return out
                (length,) = HEADER.unpack_from(self._buf)
                if length > self._max:
                    self._fail()
                    raise FrameTooLarge(
                        f"a frame declares {length} bytes, over the {self._max}-byte limit"
                    )
                del self._buf[: HEADER.size]
                self._need = length
            if len(self._buf) < self._need:
                return out
            out.append(bytes(self._buf[: self._need]))
            del self._buf[: self._need]
            self._need = None

    def feed(self, data: bytes) -> list[dict[str, Any]]:
        """Like :meth:`feed_raw`, with each payload parsed by :func:`loads`."""
        return [loads(p) for p in self.feed_raw(data)]

    def check_complete(self) -> None:
        """The input ended: fail if it stopped inside a frame.

        :raises MalformedMessage: the last frame is truncated.
        """
        if self._buf or self._need is not None:
            have = len(self._buf)
            want = f"{self._need}-byte frame" if self._need is not None else "frame header"
            self._fail()
            raise MalformedMessage(f"the input ended inside a {want} after {have} bytes")

    def _fail(self) -> None:
        self._failed = True
        self._buf = bytearray()
        self._need = None


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not allowed")


def _json_kind(obj: object) -> str:
    if isinstance(obj, list):
        return "an array"
    if isinstance(obj, str):
        return "a string"
    if obj is None:
        return "null"
    if isinstance(obj, bool):
        return "a boolean"
    return "a number"


def _first_line(exc: BaseException) -> str:
    return str(exc).split("\n", 1)[0][:120]


class OneFrame:
    """The rule of the control plane: one stream carries exactly one frame.

    Feed a stream's data as it arrives; at its end :meth:`feed` returns the
    frame. More than one frame, trailing bytes, or an end before a whole
    frame raise :class:`MalformedMessage` naming ``what`` the frame should be.
    """

    def __init__(self, what: str, max_frame: int = MAX_FRAME) -> None:
        self.what = what
        self.decoder = FrameDecoder(max_frame)
        self.payload: bytes | None = None

    def feed(self, data: bytes, end: bool) -> bytes | None:
        frames = self.decoder.feed_raw(data)
        if self.payload is None and frames:
            self.payload = frames.pop(0)
        if frames or (self.payload is not None and self.decoder.buffered):
            raise MalformedMessage(f"a stream carries one {self.what}, and this one carries more")
        if not end:
            return None
        self.decoder.check_complete()
        if self.payload is None:
            raise MalformedMessage(f"the stream ended before the {self.what}")
        return self.payload
