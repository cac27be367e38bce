"""The peers this peer knows: registration, library sync, liveness and goodbye.

:class:`PeerSync` is the discovery backends' sink (``seen``/``gone``), keeps
each remote library in step with what its peer announced (a snapshot first,
then deltas; a gap falls back to a snapshot), pings idle peers and forgets
silent ones, and is the transfers' narrow view of the peers
(:class:`~lanspread_core.transfer.sources.PeerAccess`).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import anyio
import anyio.abc

from lanspread_core.control.client import ControlPool
from lanspread_core.discovery.base import SeenPeer
from lanspread_core.errors import CommandError, LanspreadError
from lanspread_core.events import Event, PeerJoined, PeerLeft, PeerLibrary
from lanspread_core.library.served import digest
from lanspread_core.runtime.peers import PeerTable, RemotePeer
from lanspread_core.transfer.sources import Source
from lanspread_core.wire.messages import (
    PROTO_VER,
    GameInfo,
    GetDelta,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    LibraryDelta,
    LibrarySnapshot,
    Message,
    Ping,
    Pong,
)
from lanspread_core.wire.schema import clip

log = logging.getLogger(__name__)

GOODBYE_TIMEOUT = 0.5
#: peers whose last library is kept after they left, for when they come back
REMEMBERED = 64
#: a ping carries the library changes since the peer last heard of it when they
#: touch at most this many games (a downloading peer's have-map: one)
PUSH_MAX_GAMES = 16
#: what to do about peers that speak different protocol versions
SAME_VERSION = "every peer of a party needs the same lanspread version"
CONNECT_TIMEOUT = 5.0
SYNC_TIMEOUT = 10.0
#: requests one announcement may cost when the replies fall short of its revision
SYNC_ATTEMPTS = 3
#: seconds before the second of those requests; doubles for each further one
SYNC_BACKOFF = 0.25
#: announcements in a row never delivered before a peer counts as misbehaving
MISBEHAVING_AFTER = 3
#: seconds the announcements of a misbehaving peer are ignored
IGNORE_FOR = 60.0

Greeting = Callable[[type[Hello] | type[HelloAck]], Hello | HelloAck]


class PeerSync:
    """Known peers by ``peer_id`` (never by address), and what keeps them current.

    :param greeting: builds this peer's ``Hello``/``HelloAck`` (its current rev).
    :param library_rev: this peer's current library revision, for pings.
    :param library_digest: the digest of what this peer serves, for pings.
    :param in_catalog: whether the local catalog (as it is now) names a game id;
        games it does not name are dropped from every library we keep.
    :param party_advert: the party catalog this peer holds (key, seq), for pings.
    :param party_offered: told of the party catalog a peer's ping or pong advertises.
    :param party_document: the signed party catalog this peer holds, for ``GetPartyCatalog``.

    A peer's library is fetched only when it announces a revision we do not
    have *and* a digest that differs from our copy's: a change that ends where
    it began (a game busy for an install, then back) costs no request.
    """

    def __init__(
        self,
        self_id: str,
        pool: ControlPool,
        publish: Callable[[Event], None],
        greeting: Greeting,
        library_rev: Callable[[], int],
        *,
        ping_interval: float,
        stale_timeout: float,
        library_digest: Callable[[], str] = lambda: "",
        in_catalog: Callable[[str], bool] = lambda _game_id: True,
        party_advert: Callable[[], tuple[str, int]] = lambda: ("", 0),
        party_offered: Callable[[RemotePeer, str, int], None] = lambda _peer, _key, _seq: None,
        party_document: Callable[[], dict[str, Any] | None] = lambda: None,
        library_delta: Callable[[int], LibraryDelta | LibrarySnapshot] | None = None,
    ) -> None:
        self._self_id = self_id
        self.pool = pool
        self.table = PeerTable()
        self._publish = publish
        self._greeting = greeting
        self._library_rev = library_rev
        self._library_digest = library_digest
        #: our library's changes since a revision, to carry small ones in pings
        self._library_delta = library_delta
        #: whether the local catalog names a game; other games are not kept
        self._in_catalog = in_catalog
        #: the party catalog pings advertise, and who to tell of one a peer advertises
        self.party_advert = party_advert
        self.party_offered = party_offered
        self.party_document = party_document
        #: the last library of peers that left, by id: a peer that comes back with
        #: the same digest (a restart) gets it back without a snapshot
        self._remembered: collections.OrderedDict[str, dict[str, GameInfo]] = (
            collections.OrderedDict()
        )
        self.ping_interval = ping_interval
        self.stale_timeout = stale_timeout
        self._tg: anyio.abc.TaskGroup | None = None
        self._connecting: set[tuple[str, int]] = set()
        self._syncing: set[str] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._changed = anyio.Event()
        #: peers already named in the log as misbehaving (said once per peer)
        self._named_misbehaving: set[str] = set()

    def attach(self, tg: anyio.abc.TaskGroup) -> None:
        """Run background work (syncs, pings, connects) in ``tg``, the peer's own group."""
        self._tg = tg

    def _spawn(self, func: Callable[..., object], *args: object) -> None:
        assert self._tg is not None, "PeerSync.attach() first"
        self._tg.start_soon(func, *args)  # type: ignore[arg-type]

    # ------------------------------------------------------- transfers' view
    @property
    def self_id(self) -> str:
        return self._self_id

    def holders(self, game_id: str, version: str, *, partial: bool = False) -> list[Source]:
        return [
            p
            for p in self.table.all()
            if (info := p.games.get(game_id)) is not None
            and info.version == version
            and (partial or not info.partial)
        ]

    def is_present(self, peer_id: str) -> bool:
        return peer_id in self.table

    def known(self) -> list[Source]:
        return list(self.table.all())

    async def request(self, peer: Source, message: Message, timeout: float) -> Message:
        known = self.table.get(peer.peer_id)
        if known is None:
            raise CommandError(f"{peer.peer_id[:8]} is no longer a known peer")
        return await self.pool.request(
            known.host, known.port, message, timeout=timeout, expect=known.peer_id
        )

    # ----------------------------------------------------- discovery's sink
    def seen(self, seen: SeenPeer) -> None:
        """An address where a peer answers."""
        if (seen.host, seen.port) in self._self_addresses or seen.peer_id == self._self_id:
            return
        peer = self.table.get(seen.peer_id) if seen.peer_id else None
        if peer is None and seen.peer_id is None:
            peer = self.table.by_address(seen.host, seen.port)
        if peer is None:
            self._spawn(self._connect_quietly, seen.host, seen.port)
            return
        if (peer.host, peer.port) != (seen.host, seen.port):
            # an announcement is no proof: the entry moves only when the key's
            # owner greets from there (register, after the handshake proved it)
            self._spawn(self._connect_quietly, seen.host, seen.port)
            return
        if seen.library_rev is not None:
            self.announced(peer, seen.library_rev)

    def gone(self, peer_id: str) -> None:
        """A peer withdrew its announcement."""
        self.drop(peer_id, "gone")

    # --------------------------------------------------------- registration
    async def _connect_quietly(self, host: str, port: int) -> None:
        try:
            await self.connect(host, port)
        except LanspreadError as exc:
            log.debug("could not reach %s:%s: %s", host, port, exc)

    async def connect(self, host: str, port: int) -> RemotePeer | None:
        """Greet ``host:port``; the peer found there, or None when it is this peer."""
        key = (host, port)
        if key in self._connecting:
            return None
        self._connecting.add(key)
        try:
            reply = await self.pool.request(
                host, port, self._greeting(Hello), timeout=CONNECT_TIMEOUT
            )
        finally:
            self._connecting.discard(key)
        if not isinstance(reply, HelloAck):
            raise CommandError(f"{host}:{port} did not greet back")
        if reply.peer_id == self._self_id:
            self._self_addresses.add(key)
            return None
        if reply.proto_ver != PROTO_VER:
            raise CommandError(
                f"{host}:{port} speaks protocol {reply.proto_ver} and this peer {PROTO_VER};"
                f" {SAME_VERSION}"
            )
        return self.register(reply, host, port, "outbound")

    def register(self, greet: Hello | HelloAck, host: str, port: int, how: str) -> RemotePeer:
        """Add or update the peer that greeted (an address change updates the entry)."""
        peer = self.table.get(greet.peer_id)
        new = peer is None
        if peer is None:
            peer = RemotePeer(greet.peer_id, host, port, source=how)
            games = self._remembered.pop(greet.peer_id, None)
            if games is not None and greet.library_digest == digest(games):
                peer.games, peer.library_rev = games, greet.library_rev  # back, unchanged
            self.table.add(peer)
        elif (peer.host, peer.port) != (host, port):
            log.info("peer %s moved to %s:%s", peer.peer_id[:8], host, port)
            self._spawn(self.pool.discard, peer.host, peer.port)
            peer.host, peer.port = host, port
        peer.name, peer.data_port = greet.name, greet.data_port
        peer.features = tuple(greet.features)
        peer.seen()
        if new:
            self._publish(PeerJoined(peer.to_json()))
            self._changed.set()
            if peer.library_rev >= 0:
                self._publish(
                    PeerLibrary(peer.peer_id, peer.library_rev, "digest", sorted(peer.games))
                )
        self.announced(peer, greet.library_rev, greet.library_digest)
        return peer

    def drop(self, peer_id: str, reason: str) -> None:
        peer = self.table.remove(peer_id)
        if peer is None:
            return
        if peer.library_rev >= 0:
            self._remembered[peer_id] = peer.games
            while len(self._remembered) > REMEMBERED:
                self._remembered.popitem(last=False)
        self._spawn(self.pool.discard, peer.host, peer.port)
        self._publish(PeerLeft(peer_id, reason))
        self._changed.set()

    async def wait_peers(self, count: int, timeout: float) -> int:
        with anyio.move_on_after(timeout):
            while len(self.table) < count:
                self._changed = anyio.Event()
                await self._changed.wait()
        if len(self.table) < count:
            peers = "peer" if count == 1 else "peers"
            raise CommandError(f"only {len(self.table)} of {count} {peers} after {timeout:g}s")
        return len(self.table)

    # ------------------------------------------------------------- sync
    def announced(self, peer: RemotePeer, rev: int, library_digest: str = "") -> None:
        """``peer`` says its library is at ``rev`` (with ``library_digest``, when
        it said one): fetch what we miss, unless our copy already matches.

        A peer that misbehaved (announced revisions it never delivered) is not
        listened to until its time out ends."""
        if rev == peer.library_rev or time.monotonic() < peer.ignored_until:
            return
        idle = peer.peer_id not in self._syncing
        if library_digest and idle and peer.library_rev >= 0 and library_digest == peer.digest():
            log.debug("library of %s unchanged at rev %d; no sync", peer.peer_id[:8], rev)
            peer.library_rev = peer.announced_rev = rev
            return
        peer.announced_rev = rev
        self.schedule_sync(peer)

    def refresh_all(self) -> int:
        """Ask every known peer for its library now, instead of waiting for a ping."""
        for peer in self.table.all():
            peer.announced_rev = -2
            self.schedule_sync(peer)
        return len(self.table)

    async def fetch_all(self, timeout: float = SYNC_TIMEOUT) -> int:
        """:meth:`refresh_all`, then wait (at most ``timeout``) until every one of
        those syncs has ended, so what the caller lists next is current."""
        asked = [peer.peer_id for peer in self.table.all()]
        self.refresh_all()
        with anyio.move_on_after(timeout):
            while any(pid in self._syncing for pid in asked):
                await anyio.sleep(0.02)
        return len(asked)

    def catalog_changed(self) -> None:
        """The catalog changed: refetch every library whole (a delta would not bring
        back games the old catalog did not name)."""
        for peer in self.table.all():
            if peer.peer_id in self._syncing:
                peer.library_rev = -1  # the running sync goes on with a snapshot
            else:
                peer.library_rev, peer.announced_rev = -1, -2
                self.schedule_sync(peer)
        self._remembered.clear()

    def schedule_sync(self, peer: RemotePeer) -> None:
        if peer.peer_id not in self._syncing:
            self._syncing.add(peer.peer_id)
            self._spawn(self._sync, peer)

    async def _sync(self, peer: RemotePeer) -> None:
        """Bring our copy of ``peer``'s library up to what it announced."""
        attempts = 0  # requests whose reply fell short of the announced revision
        try:
            while self.table.get(peer.peer_id) is peer and peer.library_rev != peer.announced_rev:
                if attempts >= SYNC_ATTEMPTS:
                    self._undelivered(peer)
                    return
                if attempts:
                    await anyio.sleep(SYNC_BACKOFF * 2 ** (attempts - 1))
                attempts += 1
                before = peer.library_rev
                # a peer that did not say it answers GetDelta gets snapshots only
                deltas = "library-delta" in peer.features
                request: Message = (
                    GetDelta(self._self_id, peer.library_rev)
                    if peer.library_rev >= 0 and deltas
                    else GetSnapshot(self._self_id)
                )
                reply = await self.pool.request(
                    peer.host, peer.port, request, timeout=SYNC_TIMEOUT, expect=peer.peer_id
                )
                peer.seen()
                if not isinstance(reply, LibrarySnapshot | LibraryDelta):
                    self._undelivered(peer)
                    return
                if not peer.apply(reply, self._in_catalog):
                    peer.library_rev = -1  # a gap: start over from a snapshot
                    continue
                if peer.library_rev >= peer.announced_rev:
                    attempts, peer.undelivered = 0, 0  # it delivered what it announced
                peer.announced_rev = max(peer.announced_rev, peer.library_rev)
                if peer.library_rev != before:
                    via = "delta" if isinstance(reply, LibraryDelta) else "snapshot"
                    self._publish(
                        PeerLibrary(peer.peer_id, peer.library_rev, via, sorted(peer.games))
                    )
        except (LanspreadError, OSError) as exc:
            log.debug("library sync with %s failed: %s", peer.peer_id[:8], exc)
        finally:
            self._syncing.discard(peer.peer_id)

    def _undelivered(self, peer: RemotePeer) -> None:
        """``peer``'s replies never reached the revision it announced: stop asking
        for this announcement; after :data:`MISBEHAVING_AFTER` of them in a row,
        ignore its announcements for :data:`IGNORE_FOR` seconds."""
        announced, peer.announced_rev = peer.announced_rev, peer.library_rev
        peer.undelivered += 1
        if peer.undelivered < MISBEHAVING_AFTER:
            return
        peer.undelivered = 0
        peer.ignored_until = time.monotonic() + IGNORE_FOR
        level = logging.DEBUG if peer.peer_id in self._named_misbehaving else logging.WARNING
        self._named_misbehaving.add(peer.peer_id)
        log.log(
            level,
            "peer %s (%s) misbehaves: it announces library revision %d but serves %d;"
            " its announcements are ignored for %gs",
            peer.peer_id[:8],
            clip(peer.name),
            announced,
            peer.library_rev,
            IGNORE_FOR,
        )

    # -------------------------------------------------------------- liveness
    def ping_all(self) -> None:
        """Tell every peer at once that our library changed (a ping carries the rev)."""
        for peer in self.table.all():
            self._spawn(self._ping, peer)

    async def _ping(self, peer: RemotePeer) -> None:
        rev = self._library_rev()
        since, changed, removed = self.changes_for(peer, rev)
        ping = Ping(
            self._self_id,
            rev,
            self._library_digest(),
            *self.party_advert(),
            changes_from=since,
            changed=changed,
            removed=removed,
        )
        try:
            reply = await self.pool.request(
                peer.host,
                peer.port,
                ping,
                timeout=max(1.0, self.ping_interval),
                expect=peer.peer_id,
            )
        except (LanspreadError, OSError):
            return
        peer.seen()
        peer.told_rev = max(peer.told_rev, rev)
        if isinstance(reply, Pong):
            self.pushed(peer, reply)
            self.announced(peer, reply.library_rev, reply.library_digest)
            self.party_offered(peer, reply.party_key, reply.party_seq)

    def changes_for(
        self, peer: RemotePeer, rev: int
    ) -> tuple[int, tuple[GameInfo, ...], tuple[str, ...]]:
        """What changed in our library since the revision ``peer`` last heard of,
        when that is a small delta (:data:`PUSH_MAX_GAMES` games at most); else
        nothing, and the peer asks with GetDelta as it would anyway."""
        since = peer.told_rev
        if self._library_delta is None or not 0 <= since < rev:
            return 0, (), ()
        delta = self._library_delta(since)
        if not isinstance(delta, LibraryDelta) or delta.to_rev != rev:
            return 0, (), ()
        changed = (*delta.added, *delta.updated)
        if not changed and not delta.removed or len(changed) > PUSH_MAX_GAMES:
            return 0, (), ()
        return since, changed, delta.removed

    def pushed(self, peer: RemotePeer, ping: Ping | Pong) -> None:
        """Apply the changes a ping (or its pong) carries when our copy of
        ``peer``'s library is where they start and no fetch of it is running;
        else nothing (its revision then makes :meth:`announced` fetch as before)."""
        if not ping.changed and not ping.removed:
            return
        if (
            peer.library_rev < 0
            or peer.library_rev != ping.changes_from
            or ping.library_rev <= ping.changes_from
            or peer.peer_id in self._syncing
            or time.monotonic() < peer.ignored_until
        ):
            return
        delta = LibraryDelta(
            peer.peer_id, ping.changes_from, ping.library_rev, (), ping.changed, ping.removed
        )
        if peer.apply(delta, self._in_catalog):
            peer.announced_rev = max(peer.announced_rev, peer.library_rev)
            self._publish(PeerLibrary(peer.peer_id, peer.library_rev, "delta", sorted(peer.games)))

    async def liveness(self) -> None:
        """Ping idle peers; forget the ones silent past the stale timeout (a service)."""
        interval = self.ping_interval
        while True:
            now = time.monotonic()
            for peer in self.table.all():
                idle = now - peer.last_seen
                if idle > self.stale_timeout:
                    self.drop(peer.peer_id, "stale")
                elif idle >= interval:
                    self._spawn(self._ping, peer)
            await anyio.sleep(interval / 2)

    async def say_goodbye(self) -> None:
        """Tell every known peer we leave, for at most :data:`GOODBYE_TIMEOUT`."""
        with anyio.move_on_after(GOODBYE_TIMEOUT), anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for peer in self.table.all():
                    tg.start_soon(self._goodbye, peer)

    async def _goodbye(self, peer: RemotePeer) -> None:
        with contextlib.suppress(LanspreadError, OSError):
            await self.pool.request(
                peer.host,
                peer.port,
                Goodbye(self._self_id),
                timeout=GOODBYE_TIMEOUT,
                expect=peer.peer_id,
            )
