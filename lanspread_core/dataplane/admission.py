"""Which data connections the server keeps: caps per source, per peer and in all.

Every connection costs a descriptor and a task, so they are bounded before
a byte is read:

* in all, :data:`MAX_CONNECTIONS`;
* from one address, while they have not presented a token yet,
  :data:`PENDING_PER_ADDRESS` (who sent them is not known before the token;
  the address is, and an honest peer sends its token at once);
* for one peer, once its token named it, :data:`PER_PEER`.

A connection over a cap is answered with a one-line ``busy`` status and
closed without reading from it. The downloader treats that like any busy
source and asks again later.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from lanspread_core.dataplane.errors import TransferRefused

MAX_CONNECTIONS = 512
PENDING_PER_ADDRESS = 64
PER_PEER = 64


class ConnectionRefused(TransferRefused):
    """Over a connection cap; ``cause`` names which ("total", "address", "peer")."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(eq=False)
class Ticket:
    """One admitted connection; :meth:`Admission.leave` it when it ends."""

    address: str
    peer_id: str | None = None


class Admission:
    """Counts the live data connections and refuses those over a cap."""

    def __init__(
        self,
        *,
        total: int = MAX_CONNECTIONS,
        pending_per_address: int = PENDING_PER_ADDRESS,
        per_peer: int = PER_PEER,
    ) -> None:
        self.total = total
        self.pending_per_address = pending_per_address
        self.per_peer = per_peer
        self.live = 0
        self._pending: Counter[str] = Counter()
        self._peers: Counter[str] = Counter()

    def enter(self, address: str) -> Ticket:
        """Admit a new connection from ``address``.

        :raises ConnectionRefused: too many connections in all, or from ``address``.
        """
        if self.live >= self.total:
            raise ConnectionRefused(
                f"this peer has {self.total} data connections open; try again soon",
                cause="total",
            )
        if self._pending[address] >= self.pending_per_address:
            raise ConnectionRefused(
                f"{address} has {self.pending_per_address} data connections open without"
                " a request; try again soon",
                cause="address",
            )
        self.live += 1
        self._pending[address] += 1
        return Ticket(address)

    def identify(self, ticket: Ticket, peer_id: str) -> None:
        """The connection's first token names ``peer_id``.

        :raises ConnectionRefused: that peer already holds its share of connections.
        """
        if ticket.peer_id is not None:
            return
        self._drop(self._pending, ticket.address)
        ticket.peer_id = ""  # no longer pending, whatever follows
        if self._peers[peer_id] >= self.per_peer:
            raise ConnectionRefused(
                f"the caller has {self.per_peer} data connections open; try again soon",
                cause="peer",
            )
        self._peers[peer_id] += 1
        ticket.peer_id = peer_id

    def leave(self, ticket: Ticket) -> None:
        self.live -= 1
        if ticket.peer_id is None:
            self._drop(self._pending, ticket.address)
        elif ticket.peer_id:
            self._drop(self._peers, ticket.peer_id)

    @staticmethod
    def _drop(counter: Counter[str], key: str) -> None:
        counter[key] -= 1
        if counter[key] <= 0:
            del counter[key]
