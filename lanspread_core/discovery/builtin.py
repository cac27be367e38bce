"""The built-in discovery backends, registered like any plugin's (entry point ``discovery``)."""

from __future__ import annotations

from lanspread_core import hookimpl
from lanspread_core.discovery.mdns import MdnsDiscovery
from lanspread_core.discovery.static import StaticDiscovery
from lanspread_core.plugin.records import DiscoveryRecord


@hookimpl
def lanspread_discovery_backends() -> list[DiscoveryRecord]:
    return [
        DiscoveryRecord(
            name="mdns",
            factory=MdnsDiscovery,
            description="announce and find peers on the LAN by multicast DNS (zeroconf)",
        ),
        DiscoveryRecord(
            name="static",
            factory=StaticDiscovery,
            description="connect to the addresses given with --peer, retrying every few seconds",
        ),
    ]
