"""Single-use, short-lived transfer tokens: the right to fetch some bytes once.

The data plane has no TLS and no handshake of its own, so its only credential
is the token the control plane (authenticated per peer over QUIC) handed out
in a ``TransferGrant``. A token is 128 random bits, bound to one game at one
manifest hash, one requesting peer (proven by its key on the control plane),
the address that peer asked from, and exactly the ranges it was issued for; it
can be redeemed once, within its time to live, from that address only.
Keeping it short-lived bounds how long a grant outlives the state it was
checked against; the serving side checks eligibility again when the token is
redeemed anyway.

Everything here runs on the event loop (``OpenTransfer`` handler and data
server alike), so there is no locking.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from lanspread_core.dataplane.errors import TransferRefused
from lanspread_core.wire.messages import ByteRange

DEFAULT_TTL = 30.0
#: Grants outstanding at once. Each holds up to MAX_TRANSFER_RANGES ranges, so
#: this bounds what a peer flooding OpenTransfer can make us remember.
MAX_OUTSTANDING = 1024
#: Grants outstanding at once for one peer: a downloader keeps a few per stream,
#: so one peer flooding OpenTransfer cannot fill the table and lock others out.
MAX_PER_PEER = 64


class TokensBusy(TransferRefused):
    """Too many grants are outstanding, for this peer (``cause`` "peer") or in
    all (``cause`` "total"): an ordinary ``busy`` answer, asked again later."""

    def __init__(self, message: str, *, cause: str) -> None:
        super().__init__(message)
        self.cause = cause


@dataclass(frozen=True)
class Grant:
    """What a redeemed token allows: these ranges of this game, for this peer."""

    game_id: str
    peer_id: str
    ranges: tuple[ByteRange, ...]
    #: "ranges" (a download) or "stream" (a stream-install: unpacked files as frames)
    kind: str = "ranges"
    #: the address the grant was asked from; only it may redeem the token ("": any)
    host: str = ""
    #: the game's manifest hash when granted: a changed game does not serve the grant
    manifest_hash: str = ""


@dataclass(frozen=True)
class _Issued:
    grant: Grant
    expires: float


class TransferTokens:
    """Issues tokens and redeems each at most once.

    :param clock: a monotonic clock in seconds (tests pass a fake one).
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_outstanding: int = MAX_OUTSTANDING,
        max_per_peer: int = MAX_PER_PEER,
    ) -> None:
        self._clock = clock
        self._max = max_outstanding
        self._max_per_peer = max_per_peer
        self._live: dict[str, _Issued] = {}
        #: live tokens by the peer they were granted to
        self._per_peer: dict[str, int] = {}
        # spent tokens, kept until they would have expired, to say "already used"
        self._spent: dict[str, float] = {}

    def __len__(self) -> int:
        """Tokens issued and neither redeemed nor expired (expired ones purged first)."""
        self._purge(self._clock())
        return len(self._live)

    def issue(
        self,
        game_id: str,
        peer_id: str,
        ranges: Sequence[ByteRange],
        ttl: float = DEFAULT_TTL,
        kind: str = "ranges",
        *,
        host: str = "",
        manifest_hash: str = "",
    ) -> str:
        """A new token for ``ranges`` of ``game_id``, valid for ``ttl`` seconds.

        :raises TokensBusy: too many grants are outstanding, for ``peer_id`` or in all.
        """
        now = self._clock()
        self._purge(now)
        if self._per_peer.get(peer_id, 0) >= self._max_per_peer:
            raise TokensBusy(
                f"the caller has {self._max_per_peer} transfers granted and not yet started;"
                " try again soon",
                cause="peer",
            )
        if len(self._live) >= self._max:
            raise TokensBusy(
                f"this peer has {self._max} transfers granted and not yet started; try again soon",
                cause="total",
            )
        token = secrets.token_hex(16)
        grant = Grant(game_id, peer_id, tuple(ranges), kind, host, manifest_hash)
        self._live[token] = _Issued(grant, now + ttl)
        self._per_peer[peer_id] = self._per_peer.get(peer_id, 0) + 1
        return token

    def outstanding(self, peer_id: str) -> int:
        """Tokens granted to ``peer_id`` and neither redeemed nor expired."""
        self._purge(self._clock())
        return self._per_peer.get(peer_id, 0)

    def revoke(self, game_id: str) -> int:
        """Forget every outstanding token of ``game_id`` (its content changed);
        how many there were. A later redeem says the token is unknown."""
        gone = [t for t, i in self._live.items() if i.grant.game_id == game_id]
        for token in gone:
            self._forget(self._live.pop(token).grant.peer_id)
        return len(gone)

    def redeem(self, token: str, host: str | None = None) -> Grant:
        """Spend ``token`` and return its grant; ``host`` is the address that
        presents it, which must be the one the grant was asked from.

        :raises TransferRefused: the token is unknown, already used or expired,
            or presented from another address (it stays spent: a thief gets
            one refusal, the owner asks for a new grant).
        """
        now = self._clock()
        issued = self._live.pop(token, None)
        if issued is not None:
            self._forget(issued.grant.peer_id)
        self._purge(now)
        if issued is None:
            if token in self._spent:
                raise TransferRefused(
                    "this transfer token was already used; ask for a new one with OpenTransfer"
                )
            raise TransferRefused("this transfer token is unknown to this peer")
        if now > issued.expires:
            raise TransferRefused(
                "this transfer token expired before it was used; ask for a new one"
            )
        self._spent[token] = issued.expires
        grant = issued.grant
        if grant.host and host is not None and _plain(host) != _plain(grant.host):
            raise TransferRefused("this transfer token was granted to another address")
        return grant

    def _purge(self, now: float) -> None:
        for token in [t for t, i in self._live.items() if now > i.expires]:
            self._forget(self._live.pop(token).grant.peer_id)
        for token in [t for t, exp in self._spent.items() if now > exp]:
            del self._spent[token]

    def _forget(self, peer_id: str) -> None:
        left = self._per_peer.get(peer_id, 0) - 1
        if left > 0:
            self._per_peer[peer_id] = left
        else:
            self._per_peer.pop(peer_id, None)


def _plain(host: str) -> str:
    """An IPv4 address as such, also when a dual-stack socket reports it mapped."""
    return host[len("::ffff:") :] if host.startswith("::ffff:") and "." in host else host
