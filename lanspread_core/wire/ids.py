"""The shape of a peer id on the wire."""

from __future__ import annotations

import re

_PEER_ID = re.compile(r"^[0-9a-f]{32}$")


def is_peer_id(value: object) -> bool:
    """Whether ``value`` has the shape of a peer id (32 lowercase hex digits)."""
    return isinstance(value, str) and _PEER_ID.fullmatch(value) is not None
