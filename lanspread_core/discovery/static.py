"""Discovery from addresses the user gave (``--peer HOST:PORT``).

Nothing is announced. Every round reports each address again, so a peer that
was down when we started is retried by the runtime once it is up; the
runtime's stale timeout, not this backend, decides when a peer is gone.
Hostnames are resolved anew each round (a laptop's DHCP lease may change).
"""

from __future__ import annotations

import ipaddress
import logging
import socket

import anyio
import anyio.abc

from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.discovery.base import Announcement, DiscoverySink, SeenPeer

log = logging.getLogger(__name__)

#: seconds between rounds
INTERVAL = 5.0
#: seconds one hostname lookup may take before the round counts it unresolved
RESOLVE_TIMEOUT = 5.0


class StaticDiscovery:
    """Reports ``config.static_peers`` on start and every :data:`INTERVAL` seconds."""

    name = "static"

    def __init__(self, config: PeerConfig, *, interval: float = INTERVAL) -> None:
        self.peers: tuple[HostPort, ...] = tuple(config.static_peers)
        self.interval = interval
        #: the last lookup outcome per peer (an address or an error), to log changes once
        self._last: dict[HostPort, str] = {}

    async def run(
        self,
        me: Announcement,
        sink: DiscoverySink,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        task_status.started()
        if not self.peers:
            await anyio.sleep_forever()
        while True:
            async with anyio.create_task_group() as tg:
                for peer in self.peers:
                    tg.start_soon(self._report, peer, sink)
            await anyio.sleep(self.interval)

    async def update(self, me: Announcement) -> None:
        """Nothing is announced, so there is nothing to update."""

    async def _report(self, peer: HostPort, sink: DiscoverySink) -> None:
        host = await self._resolve(peer)
        if host is not None:
            sink.seen(SeenPeer(host, peer.port, None, None, self.name))

    async def _resolve(self, peer: HostPort) -> str | None:
        """The address to try for ``peer`` (IPv4 preferred), or None when it does not resolve."""
        try:
            return str(ipaddress.ip_address(peer.host))
        except ValueError:
            pass
        try:
            with anyio.fail_after(RESOLVE_TIMEOUT):
                infos = await anyio.getaddrinfo(peer.host, peer.port, type=socket.SOCK_DGRAM)
        except (OSError, TimeoutError) as exc:
            outcome = f"error: {str(exc) or 'timed out'}"
            if self._last.get(peer) != outcome:
                log.warning("static peer %s does not resolve (%s); will retry", peer, outcome[7:])
            self._last[peer] = outcome
            return None
        addrs = [str(info[4][0]) for info in infos if info[0] == socket.AF_INET]
        addrs += [str(info[4][0]) for info in infos if info[0] == socket.AF_INET6]
        if not addrs:  # getaddrinfo returns a list or raises; this is belt and braces
            return None
        if self._last.get(peer) != addrs[0]:
            log.info("static peer %s resolves to %s", peer, addrs[0])
        self._last[peer] = addrs[0]
        return addrs[0]
