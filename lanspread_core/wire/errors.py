"""What goes wrong reading the wire, each with the code an ``Error`` reply carries."""

from __future__ import annotations

from lanspread_core.errors import LanspreadError


class WireError(LanspreadError, ValueError):
    """Bytes or JSON from a peer that are not a valid message (one sentence)."""

    code: str = "malformed"


class MalformedMessage(WireError):
    """Not a JSON object, a wrong field type, a missing field, a truncated frame."""


class FrameTooLarge(WireError):
    """A frame longer than the cap."""

    code = "too_large"


class UnknownMessageType(WireError):
    """A ``type`` this peer does not know (perhaps a newer protocol version)."""

    code = "unknown_type"
