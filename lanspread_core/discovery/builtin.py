"""The built-in discovery backends, registered like any plugin's (entry point ``discovery``).

Lazy factories: every ``lanspread`` command loads this module, and only a
starting peer needs zeroconf.
"""

from __future__ import annotations

from lanspread_core import hookimpl
from lanspread_core.plugin.records import DiscoveryRecord, lazy


@hookimpl
def lanspread_discovery_backends() -> list[DiscoveryRecord]:
    return [
        DiscoveryRecord(
            name="mdns",
            factory=lazy("lanspread_core.discovery.mdns:MdnsDiscovery"),
            description="announce and find peers on the LAN by multicast DNS (zeroconf)",
        ),
        DiscoveryRecord(
            name="static",
            factory=lazy("lanspread_core.discovery.static:StaticDiscovery"),
            description="connect to the addresses given with --peer, retrying every few seconds",
        ),
    ]
