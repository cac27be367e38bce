"""The control plane over QUIC (aioquic): ALPN ``lanspread/1``, one request per stream.

- :func:`serve_control` answers requests with a handler until cancelled;
- :class:`ControlClient` sends requests to one peer; :class:`ControlPool`
  keeps one client per address.

Messages and framing are :mod:`lanspread_core.wire`'s business.
"""

from __future__ import annotations

from lanspread_core.control.client import ControlClient, ControlPool
from lanspread_core.control.config import (
    ALPN,
    CONNECT_TIMEOUT,
    IDLE_TIMEOUT,
    MAX_STREAMS_PER_CONNECTION,
    REQUEST_TIMEOUT,
)
from lanspread_core.control.errors import ListenError, PeerError, PeerUnreachable
from lanspread_core.control.server import ControlEndpoint, Handler, serve_control

__all__ = [
    "ALPN",
    "CONNECT_TIMEOUT",
    "IDLE_TIMEOUT",
    "MAX_STREAMS_PER_CONNECTION",
    "REQUEST_TIMEOUT",
    "ControlClient",
    "ControlEndpoint",
    "ControlPool",
    "Handler",
    "ListenError",
    "PeerError",
    "PeerUnreachable",
    "serve_control",
]
