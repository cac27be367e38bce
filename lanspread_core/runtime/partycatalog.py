"""The catalog of a running peer: its local file and the party catalog, kept live.

:class:`Catalogs` owns both halves and their merge (the effective catalog,
:func:`~lanspread_core.library.party.merged`). It

- reloads the local catalog file when it changes on disk (a poll every
  :data:`LOCAL_POLL` seconds, off the event loop); a broken edit keeps the old
  catalog with one warning line;
- takes a party catalog offered by a peer (advertised in ``Ping``/``Pong``,
  fetched with ``GetPartyCatalog``) or published on this machine, only when it
  is signed by the key this peer trusts (``--party``, else the key of the one
  it holds, else the first one it meets: trust on first use, said in one line)
  and its seq is above the one held; it is stored in the state directory, so
  a restart keeps it;
- hands every new effective catalog to the runtime, which applies it live.

A refusal is one warning line (and one ``catalog-refused`` event) at most once
a minute per cause and peer; the catalog held stays.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from lanspread_core.errors import LanspreadError
from lanspread_core.events import CatalogChanged, CatalogRefused, Event
from lanspread_core.library.catalog import Catalog, CatalogError, load_catalog
from lanspread_core.library.party import (
    PartyError,
    SignedCatalog,
    accepted_path,
    merged,
    read_signed,
    verify,
    write_signed,
)
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.ratelog import OncePer
from lanspread_core.wire.messages import GetPartyCatalog, Message, PartyCatalog
from lanspread_core.wire.schema import clip

log = logging.getLogger(__name__)

#: seconds between two looks at the local catalog file
LOCAL_POLL = 2.0
#: seconds a party catalog fetch may take (4 MiB on a LAN: well under one)
FETCH_TIMEOUT = 10.0

Stamp = tuple[int, int, int] | None


class Offerer(Protocol):
    """A peer that advertised a party catalog (a ``RemotePeer``)."""

    peer_id: str
    name: str


Request = Callable[[Any, Message], Awaitable[Message]]


def short_key(key: str) -> str:
    """A party key as people compare it in a log line: its first 16 characters."""
    return key[:16] + "..." if len(key) > 16 else key


def _stamp(path: Path | None) -> Stamp:
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class Catalogs:
    """The local and the party catalog of one peer, and the effective one of both.

    :param apply: called (on the event loop) with each new effective catalog.
    :param publish: publishes an event to the front-ends.
    """

    def __init__(
        self,
        state: StateDir,
        local_path: Path | None,
        pinned: str | None,
        self_id: str,
        apply: Callable[[Catalog], Awaitable[None]],
        publish: Callable[[Event], None],
    ) -> None:
        self.state = state
        self.local_path = local_path
        self.pinned = pinned
        self._self_id = self_id
        self._apply = apply
        self._publish = publish
        self.local = Catalog()
        self.party: SignedCatalog | None = None
        self._party_catalog: Catalog | None = None
        self.effective = Catalog()
        self._stamp: Stamp = None
        self._lock = anyio.Lock()
        self._fetching = False
        #: a refusal is logged once a minute per (cause, peer)
        self._refusals_said = OncePer()
        self._request: Request | None = None
        self._spawn: Callable[..., object] | None = None

    # ------------------------------------------------------------- start
    def load(self) -> Catalog:
        """Worker thread, at start: read both halves; the effective catalog.

        :raises CatalogError: the local catalog file cannot be loaded.
        """
        self._stamp = _stamp(self.local_path)
        self.local = load_catalog(self.local_path)
        for warning in self.local.warnings:
            log.warning("%s", warning)
        self._load_accepted()
        return self._merge()

    def _load_accepted(self) -> None:
        path = accepted_path(self.state)
        try:
            doc = read_signed(path)
        except PartyError as exc:
            log.warning("the stored party catalog is not used: %s", exc)
            return
        if doc is None:
            return
        if self.pinned and doc.key != self.pinned:
            log.warning(
                "the stored party catalog seq %d is signed by party key %s, not by the"
                " pinned %s; it is not used",
                doc.seq,
                short_key(doc.key),
                short_key(self.pinned),
            )
            return
        self._set_party(doc)
        log.info("party catalog seq %d of key %s (stored)", doc.seq, short_key(doc.key))

    def attach(self, request: Request, spawn: Callable[..., object]) -> None:
        """How to ask a peer for its catalog, and where fetches run (the peer's task group)."""
        self._request, self._spawn = request, spawn

    # --------------------------------------------------------- the halves
    @property
    def trusted(self) -> str | None:
        """The party key this peer trusts now (None: it takes the first it meets)."""
        return self.pinned or (self.party.key if self.party is not None else None)

    def advert(self) -> tuple[str, int]:
        """What pings say this peer holds: the party key and seq ("" and 0: none)."""
        return (self.party.key, self.party.seq) if self.party is not None else ("", 0)

    def document(self) -> dict[str, Any] | None:
        return self.party.to_json() if self.party is not None else None

    def party_version(self, game_id: str) -> tuple[int, str] | None:
        """The party catalog's seq and the version it names for ``game_id``, if it does."""
        if self.party is None or self._party_catalog is None:
            return None
        game = self._party_catalog.get(game_id)
        return (self.party.seq, game.version) if game is not None else None

    def to_json(self) -> dict[str, Any]:
        return {
            "local": str(self.local_path) if self.local_path else None,
            "party_key": self.party.key if self.party else "",
            "party_seq": self.party.seq if self.party else 0,
            "trusted_key": self.trusted or "",
            "games": len(self.effective.games),
        }

    def _set_party(self, doc: SignedCatalog) -> None:
        catalog = doc.catalog()
        for warning in catalog.warnings:
            log.warning("%s", warning)
        self.party, self._party_catalog = doc, catalog

    def _merge(self) -> Catalog:
        self.effective = merged(self._party_catalog, self.local)
        return self.effective

    async def _changed(self, source: str) -> None:
        catalog = self._merge()
        await self._apply(catalog)
        key, seq = self.advert()
        self._publish(CatalogChanged(source, sorted(catalog.games), key, seq))

    # ------------------------------------------------------- local reload
    async def watch_local(self) -> None:
        """A service: reload the local catalog file whenever it changes."""
        while True:
            await anyio.sleep(LOCAL_POLL)
            await self.reload_local()

    async def reload_local(self) -> bool:
        """Reload the local catalog if its file changed; True when it was applied."""
        stamp = await anyio.to_thread.run_sync(_stamp, self.local_path)
        if stamp == self._stamp or self.local_path is None:
            return False
        self._stamp = stamp
        try:
            catalog = await anyio.to_thread.run_sync(load_catalog, self.local_path)
        except CatalogError as exc:
            log.warning("the catalog changed but is not used: %s; the previous one stays", exc)
            return False
        for warning in catalog.warnings:
            log.warning("%s", warning)
        async with self._lock:
            self.local = catalog
            log.info("catalog %s reloaded: %d games", self.local_path, len(catalog.games))
            await self._changed("local")
        return True

    # ------------------------------------------------------ party catalog
    def offered(self, peer: Offerer, key: str, seq: int) -> None:
        """``peer`` says it holds party catalog ``seq`` of ``key``: fetch it if it is
        the one we trust (or we trust none yet) and newer than ours."""
        if not key or seq <= 0:
            return
        trusted = self.trusted
        if trusted is not None and key != trusted:
            self._refused(
                "key",
                peer,
                f"its catalog is signed by party key {short_key(key)}, and this peer trusts"
                f" {short_key(trusted)}",
            )
            return
        held = self.party.seq if self.party is not None else 0
        if seq <= held or self._fetching or self._spawn is None:
            return
        self._fetching = True
        self._spawn(self._fetch, peer)

    async def _fetch(self, peer: Offerer) -> None:
        assert self._request is not None
        try:
            reply = await self._request(peer, GetPartyCatalog(self._self_id))
            if isinstance(reply, PartyCatalog):
                await self.offer(reply.document, peer)
        except PartyError:
            pass  # said by offer
        except (LanspreadError, OSError) as exc:
            log.debug("party catalog fetch from %s failed: %s", peer.peer_id[:8], exc)
        finally:
            self._fetching = False

    async def offer(self, document: Any, origin: Offerer | None) -> SignedCatalog:
        """Take a signed catalog from ``origin`` (None: published on this machine).

        :raises PartyError: refused; the catalog held stays.
        """
        try:
            doc = await anyio.to_thread.run_sync(verify, document)
        except PartyError as exc:
            self._refused("forged", origin, str(exc))
            raise
        async with self._lock:
            trusted = self.trusted
            if trusted is not None and doc.key != trusted:
                how = "pinned with --party" if self.pinned else "of the catalog it holds"
                raise self._refused(
                    "key",
                    origin,
                    f"catalog seq {doc.seq} is signed by party key {short_key(doc.key)}, and"
                    f" this peer trusts {short_key(trusted)} ({how})",
                )
            if self.party is not None and doc.seq <= self.party.seq:
                if doc.to_json() == self.party.to_json():
                    return doc  # the one we hold: nothing to do
                raise self._refused(
                    "seq",
                    origin,
                    f"catalog seq {doc.seq} is not newer than seq {self.party.seq}, which this"
                    " peer holds (a replay or an older one)",
                )
            if trusted is None:
                where = "published on this machine" if origin is None else f"from {_who(origin)}"
                log.warning(
                    "trusting party key %s %s (first use); pass --party %s to pin it",
                    doc.key,
                    where,
                    doc.key,
                )
            await anyio.to_thread.run_sync(write_signed, accepted_path(self.state), doc)
            self._set_party(doc)
            log.info(
                "party catalog seq %d accepted from %s: %d games",
                doc.seq,
                "this machine" if origin is None else _who(origin),
                len(self._party_catalog.games if self._party_catalog else {}),
            )
            await self._changed("party")
        return doc

    def _refused(self, cause: str, origin: Offerer | None, why: str) -> PartyError:
        """Say a refusal once a minute per cause and origin; the error to raise."""
        who = "this machine" if origin is None else _who(origin)
        # a publish on this machine is always answered; a peer's, once a minute
        if origin is None or self._refusals_said((cause, origin.peer_id)):
            log.warning("refused the party catalog of %s: %s (said once a minute)", who, why)
            self._publish(CatalogRefused(who, why))
        return PartyError(f"refused: {why}")


def _who(peer: Offerer) -> str:
    name = clip(peer.name) if peer.name else ""
    return f"peer {name} ({peer.peer_id[:8]})" if name else f"peer {peer.peer_id[:8]}"
