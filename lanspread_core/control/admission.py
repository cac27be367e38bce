"""Which QUIC connections the control server accepts: a cap per address and in all.

Every connection costs a TLS handshake, aioquic's state and a share of the
frame budget (:mod:`.budget`), so a new one is refused while this server
holds :data:`MAX_CONNECTIONS`, or :data:`MAX_PER_ADDRESS` from the sender's
address. The check runs on the first datagram of a would-be connection,
before aioquic parses or answers it: over a cap, the datagram is dropped,
which costs a dictionary lookup and a count. The client's handshake times
out and it tries again later; a refusal is logged once a minute per cause
and address.
"""

from __future__ import annotations

import logging
from typing import Any

from aioquic.asyncio.server import QuicServer

from lanspread_core.system.ratelog import OncePer

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 512
MAX_PER_ADDRESS = 64
#: The smallest datagram that may open a QUIC connection (RFC 9000 §14.1).
_MIN_INITIAL = 1200


class CappedQuicServer(QuicServer):
    """aioquic's server, refusing new connections over the caps."""

    def __init__(
        self,
        *args: Any,
        max_connections: int = MAX_CONNECTIONS,
        max_per_address: int = MAX_PER_ADDRESS,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self._said = OncePer()

    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        if isinstance(data, bytes) and self._opens_connection(data):
            refusal = self._refusal(_host(addr))
            if refusal is not None:
                cause, why = refusal
                if self._said((cause, _host(addr))):
                    log.warning(
                        "refused a control connection from %s: %s (said once a minute)",
                        _host(addr),
                        why,
                    )
                return
        super().datagram_received(data, addr)

    def _opens_connection(self, data: bytes) -> bool:
        """A long-header datagram of a connection this server does not know."""
        if len(data) < _MIN_INITIAL or not data[0] & 0x80 or len(data) < 6:
            return False
        length = data[5]
        return bytes(data[6 : 6 + length]) not in self._protocols

    def _refusal(self, host: str) -> tuple[str, str] | None:
        live = set(self._protocols.values())
        if len(live) >= self.max_connections:
            return "total", f"{self.max_connections} connections are open"
        same = 0
        for protocol in live:
            peer = protocol._quic.get_peer_address()
            if peer is not None and _host(peer) == host:
                same += 1
        if same >= self.max_per_address:
            return "address", f"{self.max_per_address} connections from it are open"
        return None


def _host(addr: Any) -> str:
    host = str(addr[0])
    if host.startswith("::ffff:") and "." in host:
        host = host[len("::ffff:") :]
    return host
