"""Answering other peers: one handler per control-plane request type.

The table maps a message class to its handler, so adding a request is one
entry, and an unknown type gets an ``unsupported`` error instead of falling
through a chain of ``isinstance``. The data plane's two callbacks (which
root a grant reads, and who streams a root for a stream-install) live here
too: they are the serving side of the same rules (DESIGN §5, serving rules).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import anyio

from lanspread_core.archive.protocol import ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.config import PeerConfig
from lanspread_core.control.server import Remote
from lanspread_core.dataplane.errors import TransferRefused
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.tokens import Grant, TokensBusy, TransferTokens
from lanspread_core.library.index import Library
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.served import ServedLibrary
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import choose
from lanspread_core.runtime.swarm import Swarm
from lanspread_core.runtime.sync import SAME_VERSION, PeerSync
from lanspread_core.system.ratelog import OncePer
from lanspread_core.transfer.streamsend import send_stream
from lanspread_core.wire.messages import (
    PROTO_VER,
    TAKEN,
    Ack,
    ByteRange,
    Error,
    GameInfo,
    GameManifest,
    GetDelta,
    GetGame,
    GetPartyCatalog,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    Message,
    OpenTransfer,
    PartyCatalog,
    Ping,
    Pong,
    StreamInstall,
    TransferGrant,
)

log = logging.getLogger(__name__)

#: seconds a granted token may wait for its data connection
TOKEN_TTL = 30.0

Handler = Callable[[Any, Remote], Awaitable[Message]]


class Serving(Protocol):
    """What answering requests needs of the running peer (and nothing more)."""

    config: PeerConfig
    registry: Registry
    library: Library
    served: ServedLibrary
    ops: OperationTable
    outbound: OutboundTransfers
    tokens: TransferTokens
    sync: PeerSync
    swarm: Swarm

    def greeting(self, cls: type[Hello] | type[HelloAck]) -> Hello | HelloAck: ...


class RequestHandlers:
    def __init__(self, peer: Serving) -> None:
        self.peer = peer
        self.table: dict[type[Message], Handler] = {
            Hello: self.hello,
            Ping: self.ping,
            GetSnapshot: self.snapshot,
            GetDelta: self.delta,
            GetGame: self.get_game,
            GetPartyCatalog: self.party_catalog,
            OpenTransfer: self.open_transfer,
            StreamInstall: self.stream_install,
            Goodbye: self.goodbye,
        }
        #: a refusal is logged once a minute per (cause, peer_id)
        self._refusals_said = OncePer()

    @property
    def _self_id(self) -> str:
        return self.peer.sync.self_id

    async def handle(self, request: Message, remote: Remote) -> Message:
        """Answer one control request from another peer."""
        sender = getattr(request, "peer_id", None)
        known = self.peer.sync.table.get(sender) if isinstance(sender, str) else None
        if known is not None:
            known.seen()
        handler = self.table.get(type(request))
        if handler is None:
            return Error.of("unsupported", f"{type(request).__name__} is not handled by this peer")
        return await handler(request, remote)

    async def hello(self, hello: Hello, remote: Remote) -> Message:
        if hello.peer_id == self._self_id:
            return self.peer.greeting(HelloAck)
        if hello.proto_ver != PROTO_VER:
            return Error.of(
                "proto_ver",
                f"it speaks protocol {PROTO_VER} and the caller {hello.proto_ver}; {SAME_VERSION}",
            )
        self.peer.sync.register(hello, remote[0], hello.control_port, "inbound")
        return self.peer.greeting(HelloAck)

    async def ping(self, ping: Ping, remote: Remote) -> Message:
        sync = self.peer.sync
        known = sync.table.get(ping.peer_id)
        served = self.peer.served
        news: tuple[int, tuple[GameInfo, ...], tuple[str, ...]] = (0, (), ())
        if known is not None:
            sync.pushed(known, ping)
            sync.announced(known, ping.library_rev, ping.library_digest)
            sync.party_offered(known, ping.party_key, ping.party_seq)
            # our changes ride back, so a pong's newer rev costs the pinger no
            # GetDelta; if the pong is lost, the next push does not fit and it asks
            news = sync.changes_for(known, served.rev)
            known.told_rev = max(known.told_rev, served.rev)
        since, changed, removed = news
        return Pong(
            self._self_id,
            served.rev,
            served.digest,
            *sync.party_advert(),
            changes_from=since,
            changed=changed,
            removed=removed,
        )

    async def party_catalog(self, request: GetPartyCatalog, remote: Remote) -> Message:
        document = self.peer.sync.party_document()
        if document is None:
            return Error.of("not_found", "this peer holds no party catalog")
        return PartyCatalog(document)

    async def snapshot(self, request: GetSnapshot, remote: Remote) -> Message:
        return self.peer.served.snapshot()

    async def delta(self, request: GetDelta, remote: Remote) -> Message:
        return self.peer.served.delta(request.from_rev)

    async def get_game(self, request: GetGame, remote: Remote) -> Message:
        game_id = request.game_id
        info = self.peer.served.games.get(game_id)
        if info is None:
            return Error.of("not_found", f"{game_id} is not served by this peer")
        if info.partial:  # downloading it: the agreed manifest it fetches by
            manifest = self.peer.swarm.manifest(game_id)
        else:
            manifest = await anyio.to_thread.run_sync(self.peer.library.manifest, game_id)
        if manifest is None or manifest.manifest_hash != info.manifest_hash:
            return Error.of("unavailable", f"{game_id} is changing on this peer; try again")
        return GameManifest(game_id, info.version, manifest.to_json())

    async def open_transfer(self, request: OpenTransfer, remote: Remote) -> Message:
        """Grant a single-use token for ranges of a served game's manifest files."""
        peer = self.peer
        game_id = request.game_id
        info = peer.served.games.get(game_id)
        if info is not None and info.partial and not peer.outbound.is_blocked(game_id):
            refusal = peer.swarm.refusal(game_id, request.ranges)
            if refusal is not None:
                return Error.of("unavailable", refusal)
            grant = self._grant(
                game_id, request.peer_id, request.ranges, remote, info.manifest_hash
            )
            return replace(grant, have=info.have) if isinstance(grant, TransferGrant) else grant
        if info is None or peer.outbound.is_blocked(game_id) or peer.ops.kind_of(game_id):
            return Error.of("unavailable", f"{game_id} is not served by this peer now")
        manifest = await anyio.to_thread.run_sync(peer.library.manifest, game_id)
        if manifest is None or manifest.manifest_hash != info.manifest_hash:
            return Error.of("unavailable", f"{game_id} is changing on this peer; try again")
        sizes = {f.path: f.size for f in manifest.files}
        for r in request.ranges:
            size = sizes.get(r.path)
            if size is None or r.offset + r.length > size:
                return Error.of(
                    "bad_range", f"{r.path} at {r.offset}+{r.length} is not in {game_id}"
                )
        claim = peer.swarm.seeding.claim(
            game_id,
            request.peer_id,
            request.ranges,
            lambda: manifest.chunk_count,
            present=lambda pid: peer.sync.table.get(pid) is not None,
        )
        if claim.why:
            return Error.of(TAKEN, claim.why)
        whole = len(claim.granted) == len(request.ranges)
        ranges = request.ranges if whole else tuple(request.ranges[k] for k in claim.granted)
        grant = self._grant(game_id, request.peer_id, ranges, remote, info.manifest_hash)
        if whole or not isinstance(grant, TransferGrant):
            return grant
        return replace(grant, granted=claim.granted, taken=claim.taken)

    async def stream_install(self, request: StreamInstall, remote: Remote) -> Message:
        peer = self.peer
        info = peer.served.games.get(request.game_id)
        if info is None or info.partial or peer.ops.kind_of(request.game_id):
            return Error.of("unavailable", f"{request.game_id} is not served by this peer now")
        return self._grant(
            request.game_id, request.peer_id, (), remote, info.manifest_hash, kind="stream"
        )

    def _grant(
        self,
        game_id: str,
        peer_id: str,
        ranges: tuple[ByteRange, ...],
        remote: Remote,
        manifest_hash: str,
        kind: str = "ranges",
    ) -> Message:
        """A token for the caller, bound to its address and the game's manifest
        hash, or ``busy`` when too many are outstanding (the caller asks again
        later); a refusal is logged once per cause and peer a while."""
        try:
            token = self.peer.tokens.issue(
                game_id,
                peer_id,
                ranges,
                ttl=TOKEN_TTL,
                kind=kind,
                host=remote.host,
                manifest_hash=manifest_hash,
            )
        except TokensBusy as exc:
            self._log_refusal(exc.cause, peer_id, str(exc))
            return Error.of("busy", str(exc))
        return TransferGrant(token, self.peer.config.data_port, TOKEN_TTL)

    def _log_refusal(self, cause: str, peer_id: str, why: str) -> None:
        if self._refusals_said((cause, peer_id)):
            log.warning("refused a transfer to %s: %s (said once a minute)", peer_id[:8], why)

    async def goodbye(self, request: Goodbye, remote: Remote) -> Message:
        self.peer.sync.drop(request.peer_id, "goodbye")
        return Ack()

    # ------------------------------------------------------ data-plane side
    def resolve_transfer(self, grant: Grant) -> Path:
        """Checked after the transfer is registered, so a writer cannot slip in between."""
        peer = self.peer
        info = peer.served.games.get(grant.game_id)
        if info is not None and grant.manifest_hash and info.manifest_hash != grant.manifest_hash:
            raise TransferRefused(f"{grant.game_id} changed on this peer; ask for a new grant")
        if info is not None and not info.partial and not peer.ops.kind_of(grant.game_id):
            return peer.config.games_dir / grant.game_id
        if info is not None and info.partial and peer.swarm.serves(grant):
            return peer.config.games_dir / grant.game_id
        raise TransferRefused(f"{grant.game_id} is not served by this peer now")

    def send_stream(self, conn: socket.socket, root: Path, grant: Grant) -> int:
        """Worker thread: this peer's provider (``--provider``) streams the root."""

        def pick(archives: list[Path]) -> tuple[ArchiveProvider, ProbeResult]:
            choice = choose(self.peer.registry, self.peer.config.provider, archives)
            return choice.provider, choice.probe

        return send_stream(conn, root, pick)
