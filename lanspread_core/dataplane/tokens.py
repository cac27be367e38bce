"""Single-use, short-lived transfer tokens: the right to fetch some bytes once.

The data plane has no TLS and no handshake of its own, so its only credential
is the token the control plane (authenticated per peer over QUIC) handed out
in a ``TransferGrant``. A token is 128 random bits, bound to one game, one
requesting peer and exactly the ranges it was issued for; it can be redeemed
once, within its time to live. Keeping it short-lived bounds how long a
grant outlives the state it was checked against; the serving side checks
eligibility again when the token is redeemed anyway.

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


@dataclass(frozen=True)
class Grant:
    """What a redeemed token allows: these ranges of this game, for this peer."""

    game_id: str
    peer_id: str
    ranges: tuple[ByteRange, ...]
    #: "ranges" (a download) or "stream" (a stream-install: unpacked files as frames)
    kind: str = "ranges"


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
    ) -> None:
        self._clock = clock
        self._max = max_outstanding
        self._live: dict[str, _Issued] = {}
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
    ) -> str:
        """A new token for ``ranges`` of ``game_id``, valid for ``ttl`` seconds.

        :raises TransferRefused: too many grants are outstanding.
        """
        now = self._clock()
        self._purge(now)
        if len(self._live) >= self._max:
            raise TransferRefused(
                f"this peer has {self._max} transfers granted and not yet started; try again soon"
            )
        token = secrets.token_hex(16)
        self._live[token] = _Issued(Grant(game_id, peer_id, tuple(ranges), kind), now + ttl)
        return token

    def redeem(self, token: str) -> Grant:
        """Spend ``token`` and return its grant.

        :raises TransferRefused: the token is unknown, already used or expired.
        """
        now = self._clock()
        issued = self._live.pop(token, None)
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
        return issued.grant

    def _purge(self, now: float) -> None:
        for token in [t for t, i in self._live.items() if now > i.expires]:
            del self._live[token]
        for token in [t for t, exp in self._spent.items() if now > exp]:
            del self._spent[token]
