"""Which peers a transfer may draw from, and the manifest they must agree on.

A transfer sees the peers through :class:`PeerAccess`, a narrow view the
runtime implements: who holds a game at a version, whether a peer is still
known, and one control-plane request to a peer. Nothing here knows the
runtime, so the download engine runs in a unit test against a fake view.
"""

from __future__ import annotations

import collections
import logging
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import anyio

from lanspread_core.errors import LanspreadError
from lanspread_core.library.manifest import Manifest
from lanspread_core.system.ratelog import OncePer
from lanspread_core.wire.messages import GameInfo, GameManifest, GetGame, Message

log = logging.getLogger(__name__)

MANIFEST_TIMEOUT = 30.0


class DownloadError(LanspreadError):
    pass


class AllSourcesGone(DownloadError):
    pass


class Source(Protocol):
    """A peer a transfer draws from: its id, name, where it is now (it may move),
    and what it offers (its games, each with the have-map of a partial holder)."""

    @property
    def peer_id(self) -> str: ...

    @property
    def name(self) -> str: ...

    @property
    def host(self) -> str: ...

    @property
    def games(self) -> Mapping[str, GameInfo]: ...


class PeerAccess(Protocol):
    """What a transfer needs of the peers this peer knows."""

    @property
    def self_id(self) -> str:
        """This peer's id, which requests carry."""
        ...

    def holders(self, game_id: str, version: str, *, partial: bool = False) -> list[Source]:
        """The known peers that serve ``game_id`` at ``version`` whole, and with
        ``partial`` also those that are downloading it and serve what they verified."""
        ...

    def is_present(self, peer_id: str) -> bool:
        """Whether ``peer_id`` is still a known peer (it has not left)."""
        ...

    def known(self) -> list[Source]:
        """Every known peer, whatever it holds (to say what the peers do have)."""
        ...

    async def request(self, peer: Source, message: Message, timeout: float) -> Message:
        """One control-plane request to ``peer``; raises on failure."""
        ...


def no_source(known: list[Source], game_id: str, version: str) -> str:
    """Why no peer serves ``game_id`` at ``version``, with what the peers do have."""
    head = f"no peer serves {game_id} {version}"
    if not known:
        return (
            f"{head}: no other peer is known yet (on a LAN they appear within seconds;"
            " 'lanspread run --peer HOST' adds one by hand)"
        )
    others = [(p, p.games[game_id]) for p in known if game_id in p.games]
    if others:
        held = "; ".join(
            f"{_who(p)} has {info.version}" + (" (still downloading it)" if info.partial else "")
            for p, info in others
        )
        return f"{head} (the catalog's version): {held}"
    games = ", ".join(sorted({g for p in known for g in p.games})) or "no games yet"
    if len(known) == 1:
        return f"{head}: the one other peer, {_who(known[0])}, has {games}"
    return f"{head}: none of the {len(known)} other peers has it; they have {games}"


def _who(peer: Source) -> str:
    return peer.name or peer.peer_id[:8]


class ManifestCache:
    """Manifests by ``manifest_hash``, and which peer sent which.

    A peer's listing names the hash of the manifest it serves; when that peer
    already sent us the manifest with that hash, a repeated download or
    stream-install takes it from here instead of asking again (a manifest of a
    big game is megabytes). The manifest itself was checked against its hash
    when it arrived, so a hit is exactly what the peer would send. The newest
    ``keep`` manifests are kept.
    """

    def __init__(self, keep: int = 16) -> None:
        self.keep = keep
        self._by_hash: collections.OrderedDict[str, Manifest] = collections.OrderedDict()
        self._sent: set[tuple[str, str]] = set()

    def get(self, peer_id: str, manifest_hash: str) -> Manifest | None:
        """The manifest ``peer_id`` sent earlier under ``manifest_hash``, if kept."""
        if (peer_id, manifest_hash) not in self._sent or manifest_hash not in self._by_hash:
            return None
        self._by_hash.move_to_end(manifest_hash)
        return self._by_hash[manifest_hash]

    def put(self, peer_id: str, manifest: Manifest) -> None:
        self._by_hash[manifest.manifest_hash] = manifest
        self._by_hash.move_to_end(manifest.manifest_hash)
        self._sent.add((peer_id, manifest.manifest_hash))
        while len(self._by_hash) > self.keep:
            gone, _ = self._by_hash.popitem(last=False)
            self._sent = {pair for pair in self._sent if pair[1] != gone}


async def request_manifest(peers: PeerAccess, peer: Source, game_id: str) -> Manifest:
    reply = await peers.request(peer, GetGame(peers.self_id, game_id), MANIFEST_TIMEOUT)
    if not isinstance(reply, GameManifest):
        raise DownloadError(f"{peer.peer_id[:8]} sent no manifest")
    return await anyio.to_thread.run_sync(Manifest.from_json, reply.manifest)


async def manifests_from(
    peers: PeerAccess, sources: list[Source], game_id: str, cache: ManifestCache | None = None
) -> dict[str, Manifest]:
    """Each source's manifest of ``game_id``; a source that does not answer is left out.
    With ``cache``, a source is asked only when it lists a manifest it never sent."""
    found: dict[str, Manifest] = {}

    async def ask(peer: Source) -> None:
        listed = peer.games.get(game_id)
        if cache is not None and listed is not None:
            kept = cache.get(peer.peer_id, listed.manifest_hash)
            if kept is not None:
                found[peer.peer_id] = kept
                return
        try:
            manifest = await request_manifest(peers, peer, game_id)
        except (LanspreadError, ValueError, OSError) as exc:
            log.info("no manifest of %s from %s: %s", game_id, peer.peer_id[:8], exc)
            return
        found[peer.peer_id] = manifest
        if cache is not None:
            cache.put(peer.peer_id, manifest)

    with anyio.move_on_after(MANIFEST_TIMEOUT):
        async with anyio.create_task_group() as tg:
            for peer in sources:
                tg.start_soon(ask, peer)
    return found


def choose_manifest(
    manifests: dict[str, Manifest],
    trusted: str | None,
    hosts: Mapping[str, str] | None = None,
) -> tuple[Manifest, list[str]]:
    """The manifest a strict majority of the answers agree on (or the catalog's
    trusted one), and who sent it. A peer that did not answer does not vote.

    Votes count per host (``hosts`` maps a peer id to its address): several
    peers on one machine are one voice, so one machine running many processes
    cannot outvote the others. Without ``hosts`` each peer is its own host.
    """
    if not manifests:
        raise DownloadError("no peer sent a usable manifest")
    host_of = hosts or {}
    # one vote per host; a host whose peers disagree votes for each of its camps
    # (a dict keeps the answers' order, so ties and messages are stable)
    ballots = dict.fromkeys(
        (host_of.get(pid, pid), m.manifest_hash) for pid, m in manifests.items()
    )
    votes = Counter(digest for _, digest in ballots)
    voters = len({host for host, _ in ballots})
    digest, count = votes.most_common(1)[0]
    if trusted and digest != trusted:
        if trusted not in votes:
            raise DownloadError("no peer offers the manifest the catalog trusts")
        digest, count = trusted, votes[trusted]
    elif count * 2 <= voters or [n for _, n in votes.most_common(2)].count(count) > 1:
        # a strict majority of the machines that answered (a silent peer is no
        # "no"), and no tie: a machine whose peers disagree backs both camps
        camps = "; ".join(
            f"{', '.join(sorted(p[:8] for p, m in manifests.items() if m.manifest_hash == h))}"
            f" {'holds' if n == 1 else 'hold'} manifest {h[:12]}"
            for h, n in votes.most_common()
        )
        raise DownloadError(
            f"peers disagree about this game ({count} of {voters} machines agree:"
            f" {camps}); not downloading"
        )
    agreeing = [pid for pid, m in manifests.items() if m.manifest_hash == digest]
    return manifests[agreeing[0]], agreeing


async def agreed_sources(
    peers: PeerAccess,
    game_id: str,
    version: str,
    trusted: str | None,
    *,
    partial: bool = False,
    cache: ManifestCache | None = None,
) -> tuple[Manifest, list[Source]]:
    """Ask every holder of ``game_id`` ``version`` for its manifest (or take it
    from ``cache``); the agreed one, and the sources that sent it (first to answer
    first). Partial holders count only with ``partial`` (a download; a
    stream-install needs whole ones). With a ``trusted`` hash there is no vote:
    see :func:`trusted_sources`."""
    holders = peers.holders(game_id, version, partial=partial)
    if not holders:
        raise DownloadError(no_source(peers.known(), game_id, version))
    if trusted:
        return await trusted_sources(peers, holders, game_id, version, trusted, cache)
    manifests = await manifests_from(peers, holders, game_id, cache)
    by_id = {p.peer_id: p for p in holders}
    hosts = {pid: by_id[pid].host for pid in manifests if pid in by_id}
    manifest, agreeing = choose_manifest(manifests, trusted, hosts)
    return manifest, [by_id[pid] for pid in agreeing]


#: a refused source is named once a minute per peer, game and manifest
_refusals_said = OncePer()


def untrusted(peer: Source, game_id: str, version: str, digest: str) -> str:
    """The sentence that refuses ``peer``: it offers a manifest the catalog does not trust."""
    return (
        f"peer {named(peer)} offers {game_id} {version} with manifest {shown(digest[:12])}…,"
        " not the one the catalog trusts; not using it"
    )


def named(peer: Source) -> str:
    """``name (id8)``, or the id alone for a peer without a name."""
    return f"{shown(peer.name)} ({peer.peer_id[:8]})" if peer.name else peer.peer_id[:8]


def shown(text: str) -> str:
    """``text`` another peer sent, fit for one log line: no line breaks or controls."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _log_refusal(peer: Source, game_id: str, digest: str, sentence: str) -> None:
    """Log ``sentence`` once a minute per peer, game and manifest (a download retried
    in a loop must not flood the log)."""
    if _refusals_said((peer.peer_id, game_id, digest)):
        log.warning("%s", sentence)


async def trusted_sources(
    peers: PeerAccess,
    holders: list[Source],
    game_id: str,
    version: str,
    trusted: str,
    cache: ManifestCache | None = None,
) -> tuple[Manifest, list[Source]]:
    """The catalog's trusted manifest and the holders that sent exactly it.

    The catalog decides, not a vote, so one source is enough and a majority
    counts for nothing. A holder whose listing names another manifest is
    refused without being asked (its manifest may be megabytes); one whose
    manifest turns out to be another is refused after. Each refused holder is
    named in the log, and is no source: the sources a transfer takes later
    must list the agreed hash (see ``Download._offer``). When none is left,
    the error names them.
    """
    refused: dict[str, str] = {}
    asked: list[Source] = []
    for peer in holders:
        listed = peer.games.get(game_id)
        if listed is not None and listed.manifest_hash != trusted:
            refused[peer.peer_id] = listed.manifest_hash
        else:
            asked.append(peer)
    manifests = await manifests_from(peers, asked, game_id, cache)
    refused.update({p: m.manifest_hash for p, m in manifests.items() if m.manifest_hash != trusted})
    by_id = {p.peer_id: p for p in holders}
    for pid, digest in refused.items():
        _log_refusal(by_id[pid], game_id, digest, untrusted(by_id[pid], game_id, version, digest))
    agreeing = [pid for pid, m in manifests.items() if m.manifest_hash == trusted]
    if agreeing:
        return manifests[agreeing[0]], [by_id[pid] for pid in agreeing]
    if len(refused) == 1:
        pid, digest = next(iter(refused.items()))
        raise DownloadError(
            untrusted(by_id[pid], game_id, version, digest) + ", and no other peer offers it"
        )
    if refused:
        offers = ", ".join(
            f"peer {named(by_id[pid])} offers manifest {shown(digest[:12])}…"
            for pid, digest in refused.items()
        )
        raise DownloadError(
            f"no peer offers {game_id} {version} with the manifest the catalog trusts"
            f" ({offers}); not using them"
        )
    raise DownloadError(f"no peer sent a usable manifest of {game_id} {version}")
