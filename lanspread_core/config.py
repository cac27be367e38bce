"""A peer's configuration: what ``lanspread run``/``peer`` options become."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    @classmethod
    def parse(cls, text: str, default_port: int = 0) -> HostPort:
        """``HOST:PORT``, ``[v6]:PORT``, or ``HOST`` with ``default_port``."""
        text = text.strip()
        if text.startswith("["):
            host, _, rest = text[1:].partition("]")
            port = rest.lstrip(":") or str(default_port)
        elif text.count(":") == 1:
            host, port = text.split(":")
        else:
            host, port = text, str(default_port)
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{text!r} is not HOST:PORT")
        return cls(host, int(port))

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass
class PeerConfig:
    games_dir: Path
    state_dir: Path
    catalog: Path | None = None
    provider: str = "auto"
    #: discovery backend names; the default is mdns plus static when peers are given
    discovery: tuple[str, ...] = ("mdns", "static")
    static_peers: tuple[HostPort, ...] = ()
    listen: HostPort = field(default_factory=lambda: HostPort("0.0.0.0", 0))
    #: TCP data-plane port (0: any); bulk bytes never go over QUIC
    data_port: int = 0
    name: str = ""
    ping_interval: float = 2.0
    stale_timeout: float = 8.0
    fallback_scan_interval: float = 300.0
    #: front-ends that run beside the main one (``lanspread run --ui web``)
    ui: tuple[str, ...] = ()
    #: options plugins added to ``lanspread run``, by parameter name, for their front-ends
    ui_options: dict[str, Any] = field(default_factory=dict)
