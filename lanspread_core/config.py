"""A peer's configuration: what ``lanspread run``/``peer`` options become."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: The control plane's UDP port, and the data plane's TCP port, unless told
#: otherwise: fixed, so ``--peer HOST`` keeps working when a friend restarts,
#: and a firewall can be opened ahead of time (docs/user-guide.md).
DEFAULT_PORT = 24470
#: Listen on every IPv4 address of this machine.
ANY_ADDRESS = "0.0.0.0"
#: ``PeerConfig.data_port`` given as this takes the control port's number
#: (so port 0, any free port, for both when the control port is 0).
FOLLOW_CONTROL_PORT = -1


def host_name() -> str:
    """This machine's host name without its domain."""
    return socket.gethostname().split(".")[0] or "lanspread"


def default_name(port: int) -> str:
    """What a peer listening on ``port`` is called when not told: the host name,
    and the port after it when that is not the default one, so two peers on one
    machine (``--listen`` another port) are told apart in every list."""
    if port in (DEFAULT_PORT, 0):
        return host_name()
    return f"{host_name()}:{port}"


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int = DEFAULT_PORT) -> HostPort:
        """A peer's address: ``HOST:PORT``, ``[v6]:PORT``, or ``HOST`` (``default_port``).

        A bare number is refused: it is a port without a host.
        """
        text = text.strip()
        if text.isdigit():
            raise ValueError(f"{text!r} is a port without a host; give HOST or HOST:PORT")
        return cls._split(text, default_port)

    @classmethod
    def listen(cls, text: str) -> HostPort:
        """Where to listen: ``PORT`` (every address), ``HOST`` (the default port),
        ``HOST:PORT`` or ``[v6]:PORT``."""
        text = text.strip()
        if text.isdigit():
            return cls._split(f"{ANY_ADDRESS}:{text}", DEFAULT_PORT)
        return cls._split(text, DEFAULT_PORT)

    @classmethod
    def _split(cls, text: str, default_port: int) -> HostPort:
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.lstrip(":") or str(default_port)
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, str(default_port)
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{text!r} is not HOST:PORT (a port is a number up to 65535)")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class PeerConfig:
    games_dir: Path
    state_dir: Path
    catalog: Path | None = None
    #: the party key whose signed catalogs this peer takes (``--party``); None: the
    #: key of the party catalog it holds, or the first one it meets
    party_key: str | None = None
    provider: str = "auto"
    #: discovery backend names; the default is mdns plus static when peers are given
    discovery: tuple[str, ...] = ("mdns", "static")
    static_peers: tuple[HostPort, ...] = ()
    listen: HostPort = field(default_factory=lambda: HostPort(ANY_ADDRESS, DEFAULT_PORT))
    #: TCP data-plane port (0: any); bulk bytes never go over QUIC. The default,
    #: :data:`FOLLOW_CONTROL_PORT`, takes the number of the control port.
    data_port: int = FOLLOW_CONTROL_PORT
    #: what other peers show for this one; empty: this machine's host name
    name: str = ""
    ping_interval: float = 2.0
    stale_timeout: float = 8.0
    fallback_scan_interval: float = 300.0
    #: front-ends that run beside the main one (``lanspread run --ui web``)
    ui: tuple[str, ...] = ()
    #: options plugins added to ``lanspread run``, by parameter name, for their front-ends
    ui_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.data_port == FOLLOW_CONTROL_PORT:
            self.data_port = self.listen.port
