"""This machine's LAN addresses: what a friend types after ``--peer``."""

from __future__ import annotations

import ipaddress

import ifaddr

#: Addresses that mean "every address of this machine" when listened on.
WILDCARDS = frozenset({"0.0.0.0", "::", ""})


def lan_addresses() -> list[str]:
    """Every IPv4 address of this machine's interfaces that another machine
    could reach: not loopback, not link-local; sorted, private ones first."""
    found: set[ipaddress.IPv4Address] = set()
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if not ip.is_IPv4 or not isinstance(ip.ip, str):
                continue
            addr = ipaddress.IPv4Address(ip.ip)
            if not (addr.is_loopback or addr.is_link_local or addr.is_unspecified):
                found.add(addr)
    return [str(a) for a in sorted(found, key=lambda a: (not a.is_private, a))]


def reachable_at(host: str) -> list[str]:
    """Where other machines reach a socket bound to ``host``: the LAN addresses
    for a wildcard, else ``host`` itself."""
    return lan_addresses() if host in WILDCARDS else [host]
