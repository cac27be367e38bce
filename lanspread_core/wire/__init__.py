"""The control-plane wire format (DESIGN §5), in one package.

One request per QUIC bidirectional stream: the client writes one frame and
ends its side of the stream; the server answers with one frame and ends its
side. A frame is a 4-byte big-endian length and a UTF-8 JSON object
(:mod:`~lanspread_core.wire.framing`); the objects are the typed messages of
:mod:`~lanspread_core.wire.messages`.
"""

from __future__ import annotations

from lanspread_core.wire.errors import (
    FrameTooLarge,
    MalformedMessage,
    UnknownMessageType,
    WireError,
)
from lanspread_core.wire.framing import MAX_FRAME, FrameDecoder, OneFrame, encode_frame, loads
from lanspread_core.wire.messages import (
    MAX_TRANSFER_RANGES,
    MESSAGES,
    PROTO_VER,
    Ack,
    ByteRange,
    Error,
    GameInfo,
    GameManifest,
    GetDelta,
    GetGame,
    GetLibrarySummary,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    LibraryDelta,
    LibrarySnapshot,
    LibrarySummary,
    Message,
    OpenTransfer,
    Ping,
    Pong,
    StreamInstall,
    TransferGrant,
    decode_message,
    register,
)


def encode_message(msg: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """One frame holding ``msg``.

    :raises FrameTooLarge: the message does not fit in ``max_frame`` bytes.
    """
    return encode_frame(msg.to_json(), max_frame=max_frame)


def parse_message(payload: bytes) -> Message:
    """The message in one frame's payload.

    :raises WireError: the payload is not JSON, or not a valid message.
    """
    return decode_message(loads(payload))


__all__ = [
    "MAX_FRAME",
    "MAX_TRANSFER_RANGES",
    "MESSAGES",
    "PROTO_VER",
    "Ack",
    "ByteRange",
    "Error",
    "FrameDecoder",
    "OneFrame",
    "FrameTooLarge",
    "GameInfo",
    "GameManifest",
    "GetDelta",
    "GetGame",
    "GetLibrarySummary",
    "GetSnapshot",
    "Goodbye",
    "Hello",
    "HelloAck",
    "LibraryDelta",
    "LibrarySnapshot",
    "LibrarySummary",
    "MalformedMessage",
    "Message",
    "OpenTransfer",
    "StreamInstall",
    "Ping",
    "Pong",
    "TransferGrant",
    "UnknownMessageType",
    "WireError",
    "decode_message",
    "encode_frame",
    "encode_message",
    "parse_message",
    "register",
]
