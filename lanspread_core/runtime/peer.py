"""The peer runtime: ``start_peer(config, registry, tg) -> PeerRuntimeHandle``.

One :class:`PeerRuntime` owns everything a running peer has: its identity,
library, operation table, the QUIC control server, discovery, liveness and the
local monitor, each a service under the :class:`Supervisor` with its policy
(control server REQUIRED, discovery and liveness RESTART, monitor
BEST_EFFORT). Front-ends talk to it only through the handle: commands in,
events out.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from lanspread_core import __version__
from lanspread_core.archive.cancel import CancelToken
from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.control.client import ControlPool
from lanspread_core.control.errors import PeerError
from lanspread_core.control.identity import Identity, load_or_create_identity
from lanspread_core.control.server import ControlEndpoint, serve_control
from lanspread_core.dataplane.errors import TransferRefused
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.discovery.base import Announcement, SeenPeer
from lanspread_core.errors import Cancelled, LanspreadError, UsageError
from lanspread_core.install.transactions import Transactions
from lanspread_core.library.catalog import load_catalog
from lanspread_core.library.index import Library
from lanspread_core.library.monitor import run_monitor
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.served import ServedLibrary
from lanspread_core.library.statedir import StateDir, locked
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import choose
from lanspread_core.runtime.eventbus import Event, EventBus, Subscription
from lanspread_core.runtime.peers import PeerTable, RemotePeer
from lanspread_core.runtime.supervisor import Policy, RequiredServiceFailed, Supervisor
from lanspread_core.transfer.download import AllSourcesGone
from lanspread_core.transfer.streamsend import send_stream
from lanspread_core.wire.messages import (
    PROTO_VER,
    Ack,
    Error,
    GameManifest,
    GetDelta,
    GetGame,
    GetLibrarySummary,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    LibraryDelta,
    LibrarySnapshot,
    LibrarySummary,
    Message,
    OpenTransfer,
    Ping,
    Pong,
    StreamInstall,
    TransferGrant,
)

log = logging.getLogger(__name__)

FEATURES = ("library-delta", "tcp-data")
#: ranges one OpenTransfer may name that are not files of the served manifest: none
TOKEN_TTL = 30.0
GOODBYE_TIMEOUT = 0.5
PROGRESS_INTERVAL = 0.25


OperationBody = Callable[[CancelToken], Awaitable[dict[str, Any]]]


class CommandError(LanspreadError):
    """A command could not be carried out; the message says why."""


class StartupError(LanspreadError):
    """The peer could not start (a port in use, a broken state directory...)."""


class _Ready:
    """A ``task_status`` stand-in for services started by the supervisor."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None

    def started(self, value: Any = None) -> None:
        self.value = value
        self.event.set()


class PeerRuntimeHandle:
    """What a front-end holds: send commands, read events, stop the peer."""

    def __init__(self, runtime: PeerRuntime) -> None:
        self._rt = runtime

    @property
    def peer_id(self) -> str:
        return self._rt.identity.peer_id

    def ready_event(self) -> Event:
        return self._rt.ready_event()

    def library_event(self) -> Event:
        return self._rt.library_event()

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command; raises :class:`LanspreadError` with a sentence on failure."""
        return await self._rt.execute(command)

    def events(self) -> Subscription:
        """A new subscription to every event from now on (bounded; never stalls the peer)."""
        return self._rt.bus.subscribe()

    async def shutdown(self) -> None:
        self._rt.request_stop()
        await self.wait_stopped()

    async def wait_stopped(self) -> None:
        await self._rt.stopped.wait()

    @property
    def failure(self) -> str | None:
        return self._rt.failure


async def start_peer(
    config: PeerConfig, registry: Registry, tg: anyio.abc.TaskGroup
) -> PeerRuntimeHandle:
    """Boot a peer inside ``tg`` and return its handle once it is listening."""
    runtime = PeerRuntime(config, registry)
    return await tg.start(runtime.run)


class PeerRuntime:
    def __init__(self, config: PeerConfig, registry: Registry) -> None:
        self.config = config
        self.registry = registry
        self.bus = EventBus()
        self.ops = OperationTable()
        self.peers = PeerTable()
        self.pool = ControlPool()
        self.state = StateDir(config.state_dir)
        self.identity: Identity
        self.library: Library
        self.tx: Transactions
        self.served: ServedLibrary
        self.endpoint: ControlEndpoint | None = None
        self.failure: str | None = None
        self.stopped = anyio.Event()
        self._stop = anyio.Event()
        self._tg: anyio.abc.TaskGroup
        self._connecting: set[tuple[str, int]] = set()
        self._syncing: set[str] = set()
        self._self_addresses: set[tuple[str, int]] = set()
        self._peers_changed = anyio.Event()
        self.cancels: dict[str, CancelToken] = {}
        self._discovery: list[Any] = []
        self._monitor_scope: anyio.CancelScope | None = None
        self.tokens = TransferTokens()
        self.outbound = OutboundTransfers(on_count=self._outbound_count)
        self.downloads: dict[str, Any] = {}

    # ------------------------------------------------------------- lifecycle
    async def run(self, *, task_status: anyio.abc.TaskStatus[PeerRuntimeHandle]) -> None:
        try:
            with locked(self.state, "a running lanspread peer"):
                await self._run(task_status)
        finally:
            self.bus.close()
            self.stopped.set()

    async def _run(self, task_status: anyio.abc.TaskStatus[PeerRuntimeHandle]) -> None:
        cfg = self.config
        self.identity = await anyio.to_thread.run_sync(load_or_create_identity, self.state)
        self.served = ServedLibrary(self.identity.peer_id)
        self._open_games_dir(cfg.games_dir)
        for note in await anyio.to_thread.run_sync(self.tx.recover):
            log.info("recovered: %s", note)
        self._loop = asyncio.get_running_loop()
        # operations begin and end in worker threads; events are published on the loop
        self.ops.subscribe(lambda _snap: self._loop.call_soon_threadsafe(self._ops_changed))
        async with anyio.create_task_group() as tg:
            self._tg = tg
            sup = Supervisor(tg, self._fatal)
            self.supervisor = sup
            data_ready = _Ready()
            sup.start(
                "data",
                Policy.REQUIRED,
                lambda: serve_data(
                    cfg.listen.host,
                    cfg.data_port,
                    self.tokens,
                    self._resolve_transfer,
                    self.outbound,
                    stream=self._send_stream,
                    task_status=data_ready,
                ),
            )
            await self._wait_ready(data_ready, "the data plane")
            self.config = cfg = replace(cfg, data_port=data_ready.value.port)
            ready = _Ready()
            sup.start(
                "control",
                Policy.REQUIRED,
                lambda: serve_control(
                    cfg.listen.host, cfg.listen.port, self.identity, self.handle, task_status=ready
                ),
            )
            await self._wait_ready(ready, "the control server")
            self.endpoint = ready.value
            monitor_ready = _Ready()
            sup.start("monitor", Policy.BEST_EFFORT, lambda: self._monitor(monitor_ready))
            await self._wait_ready(monitor_ready, "the library scan")
            for backend in self._backends():
                sup.start(
                    f"discovery:{backend.name}",
                    Policy.RESTART,
                    lambda b=backend: b.run(self._announcement(), self),
                )
            sup.start("liveness", Policy.RESTART, self._liveness)
            socket_ready = _Ready()
            sup.start(
                "control-socket", Policy.BEST_EFFORT, lambda: self._control_socket(socket_ready)
            )
            await socket_ready.event.wait()
            self.bus.publish(self.ready_event())
            task_status.started(PeerRuntimeHandle(self))
            await self._stop.wait()
            await self._say_goodbye()
            tg.cancel_scope.cancel()
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.pool.aclose()

    async def _wait_ready(self, ready: _Ready, what: str) -> None:
        """Wait until a service reports ready, or fail with why it could not start."""
        async with anyio.create_task_group() as tg:

            async def stop_waiting() -> None:
                await self._stop.wait()
                tg.cancel_scope.cancel()

            tg.start_soon(stop_waiting)
            await ready.event.wait()
            tg.cancel_scope.cancel()
        if not ready.event.is_set():
            raise StartupError(self.failure or f"{what} did not start")

    async def _control_socket(self, ready: _Ready) -> None:
        """The local JSONL endpoint (``<state>/control.sock``) for client commands."""
        from lanspread_core.ipc.server import serve_control_socket

        try:
            await serve_control_socket(
                PeerRuntimeHandle(self), self.state.control_socket, task_status=ready
            )
        finally:
            ready.event.set()  # a peer without its socket still runs (best effort)

    def request_stop(self) -> None:
        self._stop.set()

    async def _fatal(self, exc: RequiredServiceFailed) -> None:
        cause = exc.cause
        self.failure = str(cause) if isinstance(cause, LanspreadError) else str(exc)
        self.bus.publish({"event": "runtime-failed", "error": self.failure})
        self._stop.set()

    def _open_games_dir(self, games_dir: Path) -> None:
        games_dir = games_dir.expanduser()
        games_dir.mkdir(parents=True, exist_ok=True)
        catalog = load_catalog(self.config.catalog)
        for warning in catalog.warnings:
            log.warning("%s", warning)
        self.config = replace(self.config, games_dir=games_dir)
        self.catalog = catalog
        self.library = Library(games_dir, self.state, catalog)
        self.tx = Transactions(games_dir, self.state, self.registry, self.ops, self.config.provider)

    def _backends(self) -> list[Any]:
        names = list(self.config.discovery)
        if "static" not in names and self.config.static_peers:
            names.append("static")
        backends = []
        for name in names:
            record = self.registry.discovery.get(name)
            if record is None:
                raise UsageError(
                    f"discovery backend {name!r} is not installed"
                    f" (installed: {', '.join(sorted(self.registry.discovery)) or 'none'})"
                )
            backends.append(record.factory(self.config))
        self._discovery = backends
        return backends

    def _announcement(self) -> Announcement:
        assert self.endpoint is not None
        return Announcement(
            peer_id=self.identity.peer_id,
            proto_ver=PROTO_VER,
            library_rev=self.served.rev,
            control_port=self.endpoint.port,
            data_port=self.config.data_port,
            name=self.config.name,
        )

    def ready_event(self) -> Event:
        assert self.endpoint is not None
        return {
            "event": "ready",
            "peer_id": self.identity.peer_id,
            "name": self.config.name,
            "version": __version__,
            "control": str(HostPort(self.endpoint.host, self.endpoint.port)),
            "listen": [str(HostPort(self.endpoint.host, self.endpoint.port))],
            "data_port": self.config.data_port,
            "games_dir": str(self.config.games_dir),
            "state_dir": str(self.state.path),
        }

    # --------------------------------------------------------------- library
    async def _monitor(self, ready: _Ready) -> None:
        with anyio.CancelScope() as scope:
            self._monitor_scope = scope
            await run_monitor(
                self.library,
                self.ops,
                self._library_changed,
                fallback_interval=self.config.fallback_scan_interval,
                task_status=ready,
            )

    async def _library_changed(self, rev: int) -> None:
        _, games = self.library.snapshot()
        served_changed = self.served.update(rev, games)
        self.bus.publish(self.library_event())
        if served_changed:
            for disc in self._discovery:
                self._tg.start_soon(self._update_discovery, disc)
            for peer in self.peers.all():
                self._tg.start_soon(self._ping, peer)

    async def _update_discovery(self, disc: Any) -> None:
        try:
            await disc.update(self._announcement())
        except Exception as exc:
            log.debug("discovery update failed: %s", exc)

    def _ops_changed(self) -> None:
        self.bus.publish(self.library_event())

    def active(self) -> list[dict[str, str]]:
        return [{"game_id": k, "kind": v} for k, v in sorted(self.ops.snapshot().items())]

    def library_event(self) -> Event:
        rev, games = self.library.snapshot()
        return {
            "event": "library",
            "rev": rev,
            "games": [g.to_json() for g in games],
            "active": self.active(),
        }

    # --------------------------------------------------- control plane (server)
    async def handle(self, request: Message, remote: tuple[str, int]) -> Message:
        """Answer one control request from another peer."""
        sender = getattr(request, "peer_id", None)
        peer = self.peers.get(sender) if sender else None
        if peer is not None:
            peer.seen()
        if isinstance(request, Hello):
            return self._on_hello(request, remote)
        if isinstance(request, Ping):
            if peer is not None and request.library_rev != peer.library_rev:
                peer.announced_rev = request.library_rev
                self._schedule_sync(peer)
            return Pong(self.identity.peer_id, self.served.rev)
        if isinstance(request, GetSnapshot):
            return self.served.snapshot()
        if isinstance(request, GetDelta):
            return self.served.delta(request.from_rev)
        if isinstance(request, GetLibrarySummary):
            return LibrarySummary(
                self.identity.peer_id, self.served.rev, self.served.digest, len(self.served.games)
            )
        if isinstance(request, GetGame):
            return await self._on_get_game(request.game_id)
        if isinstance(request, OpenTransfer):
            return await self._on_open_transfer(request)
        if isinstance(request, StreamInstall):
            if request.game_id not in self.served.games or self.ops.kind_of(request.game_id):
                return Error.of("unavailable", f"{request.game_id} is not served by this peer now")
            token = self.tokens.issue(
                request.game_id, request.peer_id, (), ttl=TOKEN_TTL, kind="stream"
            )
            return TransferGrant(token, self.config.data_port, TOKEN_TTL)
        if isinstance(request, Goodbye):
            self._drop(request.peer_id, "goodbye")
            return Ack()
        return Error.of("unsupported", f"{type(request).__name__} is not handled by this peer")

    def _greeting(self, cls: type[Hello] | type[HelloAck]) -> Hello | HelloAck:
        assert self.endpoint is not None
        return cls(
            self.identity.peer_id,
            PROTO_VER,
            self.served.rev,
            self.served.digest,
            FEATURES,
            self.config.data_port,
            self.config.name,
            self.endpoint.port,
        )

    def _on_hello(self, hello: Hello, remote: tuple[str, int]) -> Message:
        if hello.peer_id == self.identity.peer_id:
            return self._greeting(HelloAck)
        if hello.proto_ver != PROTO_VER:
            return Error.of("proto_ver", f"this peer speaks protocol {PROTO_VER}")
        self._register(hello, remote[0], hello.control_port, "inbound")
        return self._greeting(HelloAck)

    async def _on_get_game(self, game_id: str) -> Message:
        info = self.served.games.get(game_id)
        if info is None:
            return Error.of("not_found", f"{game_id} is not served by this peer")
        manifest = await anyio.to_thread.run_sync(self.library.manifest, game_id)
        if manifest is None or manifest.manifest_hash != info.manifest_hash:
            return Error.of("unavailable", f"{game_id} is changing on this peer; try again")
        return GameManifest(game_id, info.version, manifest.to_json())

    async def _on_open_transfer(self, request: OpenTransfer) -> Message:
        """Grant a single-use token for ranges of a served game's manifest files."""
        game_id = request.game_id
        info = self.served.games.get(game_id)
        if info is None or self.outbound.is_blocked(game_id) or self.ops.kind_of(game_id):
            return Error.of("unavailable", f"{game_id} is not served by this peer now")
        manifest = await anyio.to_thread.run_sync(self.library.manifest, game_id)
        if manifest is None or manifest.manifest_hash != info.manifest_hash:
            return Error.of("unavailable", f"{game_id} is changing on this peer; try again")
        sizes = {f.path: f.size for f in manifest.files}
        for r in request.ranges:
            size = sizes.get(r.path)
            if size is None or r.offset + r.length > size:
                return Error.of(
                    "bad_range", f"{r.path} at {r.offset}+{r.length} is not in {game_id}"
                )
        token = self.tokens.issue(game_id, request.peer_id, request.ranges, ttl=TOKEN_TTL)
        return TransferGrant(token, self.config.data_port, TOKEN_TTL)

    def _resolve_transfer(self, grant: Grant) -> Path:
        """Checked after the transfer is registered, so a writer cannot slip in between."""
        if grant.game_id not in self.served.games or self.ops.kind_of(grant.game_id):
            raise TransferRefused(f"{grant.game_id} is not served by this peer now")
        return self.config.games_dir / grant.game_id

    def _send_stream(self, conn: socket.socket, root: Path, grant: Grant) -> int:
        """Worker thread: this peer's provider (``--provider``) streams the root."""

        def pick(archives: list[Path]) -> tuple[Any, Any]:
            choice = choose(self.registry, self.config.provider, archives)
            return choice.provider, choice.probe

        return send_stream(conn, root, pick)

    def _outbound_count(self, count: int) -> None:
        self.bus.publish({"event": "outbound-transfers", "count": count})

    # --------------------------------------------------- peers (client side)
    def seen(self, seen: SeenPeer) -> None:
        """DiscoverySink: an address where a peer answers."""
        if (seen.host, seen.port) in self._self_addresses or seen.peer_id == self.identity.peer_id:
            return
        peer = self.peers.get(seen.peer_id) if seen.peer_id else None
        if peer is None and seen.peer_id is None:
            peer = self.peers.by_address(seen.host, seen.port)
        if peer is None:
            self._tg.start_soon(self._connect_quietly, seen.host, seen.port)
            return
        if (peer.host, peer.port) != (seen.host, seen.port) and seen.peer_id:
            log.info("peer %s moved to %s:%s", peer.peer_id[:8], seen.host, seen.port)
            peer.host, peer.port = seen.host, seen.port
        if seen.library_rev is not None and seen.library_rev != peer.library_rev:
            peer.announced_rev = seen.library_rev
            self._schedule_sync(peer)

    def gone(self, peer_id: str) -> None:
        """DiscoverySink: a peer withdrew its announcement."""
        self._drop(peer_id, "gone")

    async def _connect_quietly(self, host: str, port: int) -> None:
        try:
            await self.connect(host, port)
        except LanspreadError as exc:
            log.debug("could not reach %s:%s: %s", host, port, exc)

    async def connect(self, host: str, port: int) -> RemotePeer | None:
        key = (host, port)
        if key in self._connecting:
            return None
        self._connecting.add(key)
        try:
            reply = await self.pool.request(host, port, self._greeting(Hello), timeout=5)
        finally:
            self._connecting.discard(key)
        if not isinstance(reply, HelloAck):
            raise CommandError(f"{host}:{port} did not greet back")
        if reply.peer_id == self.identity.peer_id:
            self._self_addresses.add(key)
            return None
        if reply.proto_ver != PROTO_VER:
            raise CommandError(f"{host}:{port} speaks protocol {reply.proto_ver}, not {PROTO_VER}")
        return self._register(reply, host, port, "outbound")

    def _register(self, greet: Hello | HelloAck, host: str, port: int, how: str) -> RemotePeer:
        peer = self.peers.get(greet.peer_id)
        new = peer is None
        if peer is None:
            peer = RemotePeer(greet.peer_id, host, port, source=how)
            self.peers.add(peer)
        elif (peer.host, peer.port) != (host, port):
            peer.host, peer.port = host, port
        peer.name, peer.data_port = greet.name, greet.data_port
        peer.announced_rev = greet.library_rev
        peer.seen()
        if new:
            self.bus.publish({"event": "peer-joined", "peer": peer.to_json()})
            self._peers_changed.set()
        if greet.library_rev != peer.library_rev:
            self._schedule_sync(peer)
        return peer

    def _drop(self, peer_id: str, reason: str) -> None:
        peer = self.peers.remove(peer_id)
        if peer is None:
            return
        self._tg.start_soon(self.pool.discard, peer.host, peer.port)
        self.bus.publish({"event": "peer-left", "peer_id": peer_id, "reason": reason})
        self._peers_changed.set()

    def _schedule_sync(self, peer: RemotePeer) -> None:
        if peer.peer_id not in self._syncing:
            self._syncing.add(peer.peer_id)
            self._tg.start_soon(self._sync, peer)

    async def _sync(self, peer: RemotePeer) -> None:
        """Bring our copy of ``peer``'s library up to what it announced."""
        try:
            while self.peers.get(peer.peer_id) is peer and peer.library_rev != peer.announced_rev:
                before = peer.library_rev
                request: Message = (
                    GetSnapshot(self.identity.peer_id)
                    if peer.library_rev < 0
                    else GetDelta(self.identity.peer_id, peer.library_rev)
                )
                reply = await self.pool.request(peer.host, peer.port, request, timeout=10)
                peer.seen()
                if not isinstance(reply, LibrarySnapshot | LibraryDelta):
                    return
                if not peer.apply(reply):
                    peer.library_rev = -1  # a gap: start over from a snapshot
                    continue
                peer.announced_rev = max(peer.announced_rev, peer.library_rev)
                if peer.library_rev != before:
                    self.bus.publish(
                        {
                            "event": "peer-library",
                            "peer_id": peer.peer_id,
                            "rev": peer.library_rev,
                            "via": "delta" if isinstance(reply, LibraryDelta) else "snapshot",
                            "games": sorted(peer.games),
                        }
                    )
        except (LanspreadError, OSError) as exc:
            log.debug("library sync with %s failed: %s", peer.peer_id[:8], exc)
        finally:
            self._syncing.discard(peer.peer_id)

    async def _ping(self, peer: RemotePeer) -> None:
        try:
            reply = await self.pool.request(
                peer.host,
                peer.port,
                Ping(self.identity.peer_id, self.served.rev),
                timeout=max(1.0, self.config.ping_interval),
            )
        except (LanspreadError, OSError):
            return
        peer.seen()
        if isinstance(reply, Pong) and reply.library_rev != peer.library_rev:
            peer.announced_rev = reply.library_rev
            self._schedule_sync(peer)

    async def _liveness(self) -> None:
        """Ping idle peers; forget the ones silent past the stale timeout."""
        interval = self.config.ping_interval
        while True:
            now = time.monotonic()
            for peer in self.peers.all():
                idle = now - peer.last_seen
                if idle > self.config.stale_timeout:
                    self._drop(peer.peer_id, "stale")
                elif idle >= interval:
                    self._tg.start_soon(self._ping, peer)
            await anyio.sleep(interval / 2)

    async def _say_goodbye(self) -> None:
        with anyio.move_on_after(GOODBYE_TIMEOUT), anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for peer in self.peers.all():
                    tg.start_soon(self._goodbye, peer)

    async def _goodbye(self, peer: RemotePeer) -> None:
        with contextlib.suppress(LanspreadError, OSError):
            await self.pool.request(
                peer.host, peer.port, Goodbye(self.identity.peer_id), timeout=GOODBYE_TIMEOUT
            )

    # -------------------------------------------------------------- commands
    async def execute(self, command: dict[str, Any]) -> dict[str, Any]:
        from lanspread_core.runtime.commands import dispatch

        return await dispatch(self, command)

    def progress_publisher(
        self, kind: str, game_id: str, active_peers: int = 0
    ) -> Callable[[int, int], None]:
        """A progress callback for worker threads: at most 4 events a second."""
        last = 0.0
        started = time.monotonic()

        def progress(done_bytes: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if now - last >= PROGRESS_INTERVAL or done_bytes == total:
                last = now
                rate = done_bytes / max(1e-6, now - started)
                event = {
                    "event": f"{kind}-progress",
                    "game_id": game_id,
                    "bytes": done_bytes,
                    "total": total,
                    "rate": round(rate),
                    "eta": round((total - done_bytes) / rate, 1) if rate > 0 else None,
                    "active_peers": active_peers,
                }
                self._loop.call_soon_threadsafe(self.bus.publish, event)

        return progress

    async def run_operation(
        self, kind: str, game_id: str, body: OperationBody, wait: bool
    ) -> dict[str, Any]:
        """Run one operation on ``game_id`` with lifecycle events; optionally wait for it."""
        if self.ops.kind_of(game_id) or game_id in self.cancels:
            raise CommandError(f"{game_id} is busy with {self.ops.kind_of(game_id) or 'work'}")
        token = CancelToken()
        self.cancels[game_id] = token
        done = anyio.Event()
        result: dict[str, Any] = {}

        async def runner() -> None:
            nonlocal result
            base = {"game_id": game_id, "op": kind}
            self.bus.publish({"event": f"{kind}-begin", "game_id": game_id})
            try:
                result = {**base, **(await body(token))}
                self.bus.publish({"event": f"{kind}-finished", **result})
            except Cancelled:
                result = {**base, "error": f"{kind} of {game_id} was cancelled", "cancelled": True}
                self.bus.publish({"event": f"{kind}-cancelled", **result})
            except LanspreadError as exc:
                result = {**base, "error": str(exc)}
                if isinstance(exc, AllSourcesGone):
                    self.bus.publish({"event": f"{kind}-all-peers-gone", **result})
                self.bus.publish({"event": f"{kind}-failed", **result})
            except Exception as exc:  # a bug must not take the peer down
                log.exception("%s of %s failed", kind, game_id)
                result = {**base, "error": f"internal error: {exc}"}
                self.bus.publish({"event": f"{kind}-failed", **result})
            finally:
                self.cancels.pop(game_id, None)
                done.set()

        self._tg.start_soon(runner)
        if not wait:
            return {"game_id": game_id, "op": kind, "started": True}
        await done.wait()
        if "error" in result:
            raise CommandError(result["error"])
        return result

    async def wait_peers(self, count: int, timeout: float) -> int:
        with anyio.move_on_after(timeout):
            while len(self.peers) < count:
                self._peers_changed = anyio.Event()
                await self._peers_changed.wait()
        if len(self.peers) < count:
            raise CommandError(f"only {len(self.peers)} of {count} peers after {timeout:g}s")
        return len(self.peers)

    async def set_game_dir(self, path: Path) -> None:
        if self.ops.snapshot():
            raise CommandError("operations are running; set the games dir when they have ended")
        if self._monitor_scope is not None:
            self._monitor_scope.cancel()
        await anyio.sleep(0)
        self._open_games_dir(path)
        ready = _Ready()
        self.supervisor.start("monitor", Policy.BEST_EFFORT, lambda: self._monitor(ready))
        with anyio.fail_after(120):
            await ready.event.wait()

    async def request_manifest(self, peer: RemotePeer, game_id: str) -> GameManifest:
        reply = await self.pool.request(
            peer.host, peer.port, GetGame(self.identity.peer_id, game_id), timeout=30
        )
        if not isinstance(reply, GameManifest):
            raise PeerError("protocol", f"{peer.peer_id[:8]} sent no manifest")
        return reply
