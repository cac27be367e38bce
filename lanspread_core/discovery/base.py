"""The contract between the runtime and a discovery backend.

A backend announces this peer (where that makes sense) and reports what it
sees. It knows nothing about QUIC: the runtime connects to whatever address
is reported, learns the peer's id from its Hello, and keys peers by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import anyio.abc


@dataclass(frozen=True)
class Announcement:
    """What this peer tells the LAN about itself."""

    peer_id: str
    proto_ver: int
    library_rev: int
    control_port: int  # QUIC, UDP
    data_port: int  # TCP data plane
    name: str = ""
    addresses: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class SeenPeer:
    """An address where a peer answers. ``peer_id`` is ``None`` when unknown
    (static addresses); ``library_rev`` lets the runtime skip a refresh."""

    host: str
    port: int
    peer_id: str | None = None
    library_rev: int | None = None
    source: str = ""


class DiscoverySink(Protocol):
    """Called by backends from the event loop (never from another thread)."""

    def seen(self, peer: SeenPeer) -> None: ...

    def gone(self, peer_id: str) -> None: ...


class DiscoveryBackend(Protocol):
    name: str

    async def run(
        self,
        me: Announcement,
        sink: DiscoverySink,
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Announce ``me`` and report peers until cancelled; ``started()`` once live."""
        ...

    async def update(self, me: Announcement) -> None:
        """The announcement changed (a new ``library_rev``); re-announce it."""
        ...
