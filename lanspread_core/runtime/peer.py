"""The peer runtime: ``start_peer(config, registry, tg) -> PeerRuntimeHandle``.

:class:`PeerRuntime` owns a running peer's parts and their lifecycle: its
identity, library, operation table, and the services under the
:class:`~lanspread_core.runtime.supervisor.Supervisor`, each with its policy
(data plane and control server REQUIRED, discovery and liveness RESTART, the
local monitor and the caller's extra services BEST_EFFORT). The jobs live
next door: answering peers in :mod:`~.handlers`, knowing peers in
:mod:`~.sync`, running operations in :mod:`~.runner` and :mod:`~.operations`,
commands in :mod:`~.commands`. Front-ends talk to it only through the
handle: commands in, typed events out.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from lanspread_core import __version__
from lanspread_core.config import ANY_ADDRESS, DEFAULT_PORT, HostPort, PeerConfig, default_name
from lanspread_core.control.client import ControlPool
from lanspread_core.control.errors import ListenError
from lanspread_core.control.identity import Identity, load_or_create_identity
from lanspread_core.control.server import ControlEndpoint, serve_control
from lanspread_core.dataplane.errors import DataListenError
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import TransferTokens
from lanspread_core.discovery.base import Announcement
from lanspread_core.errors import CommandError, LanspreadError, UsageError
from lanspread_core.events import LibraryChanged, Ready, RuntimeFailed
from lanspread_core.events import OutboundTransfers as OutboundEvent
from lanspread_core.install.transactions import Transactions
from lanspread_core.library.catalog import Catalog
from lanspread_core.library.index import Library
from lanspread_core.library.monitor import run_monitor
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.served import ServedLibrary
from lanspread_core.library.statedir import StateDir, locked
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import AUTO, build_provider
from lanspread_core.runtime.commands import dispatch
from lanspread_core.runtime.eventbus import EventBus, Subscription
from lanspread_core.runtime.handlers import RequestHandlers
from lanspread_core.runtime.operations import Workshop
from lanspread_core.runtime.partycatalog import FETCH_TIMEOUT, Catalogs
from lanspread_core.runtime.runner import OperationRunner
from lanspread_core.runtime.supervisor import Policy, RequiredServiceFailed, Supervisor
from lanspread_core.runtime.swarm import Swarm
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.system.portable import raise_open_files_limit
from lanspread_core.transfer.sources import ManifestCache
from lanspread_core.wire.messages import MAX_PEER_NAME, PROTO_VER, Hello, HelloAck

log = logging.getLogger(__name__)

FEATURES = ("library-delta", "tcp-data")
#: the outbound-transfers event is published at most this often (seconds): in a
#: crowd every chunk served starts and ends a transfer, and each event is a log
#: line, a console line and JSON for every session; the last count always follows
OUTBOUND_EVERY = 0.5


class StartupError(LanspreadError):
    """The peer could not start (a port in use, a broken state directory...)."""


def listen_failure(exc: ListenError | DataListenError, config: PeerConfig) -> str:
    """Why a listening socket failed, as one sentence that says what to do."""
    control = isinstance(exc, ListenError)
    host = config.listen.host
    port = config.listen.port if control else config.data_port
    what = f"UDP port {port} (the control plane)" if control else f"TCP port {port} (downloads)"
    # a data port that shares the control port's number moves with --listen
    follows = control or config.data_port == config.listen.port
    flag = "--listen" if follows else "--data-port"
    if exc.errno == errno.EADDRINUSE:
        other = f"{host}:{port + 1}" if follows and host != ANY_ADDRESS else str(port + 1)
        return (
            f"{what} is already in use on this machine, perhaps by another lanspread peer;"
            f" stop that or start this one with {flag} {other}"
        )
    # a negative number is getaddrinfo's: the host does not resolve
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT) or (exc.errno or 0) < 0:
        return (
            f"cannot listen on {host}: it is not an address of this machine;"
            " give --listen a local address, or just a port to listen on every address"
        )
    if exc.errno == errno.EACCES:
        return f"{what} needs root (ports below 1024 do); start with {flag} {DEFAULT_PORT}"
    return str(exc)


class _Ready:
    """A ``task_status`` stand-in for services started by the supervisor."""

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: Any = None

    def started(self, value: Any = None) -> None:
        self.value = value
        self.event.set()


@dataclass(frozen=True)
class LocalService:
    """A service the caller runs beside the peer's own (the local control socket).

    ``run(handle, task_status)`` calls ``task_status.started()`` once it serves;
    the peer reports ready only after that. Policy: best effort.
    """

    name: str
    run: Callable[[PeerRuntimeHandle, Any], Awaitable[None]]


class PeerRuntimeHandle:
    """What a front-end holds: send commands, read events, stop the peer."""

    def __init__(self, runtime: PeerRuntime) -> None:
        self._rt = runtime

    @property
    def peer_id(self) -> str:
        return self._rt.identity.peer_id

    def ready_event(self) -> Ready:
        return self._rt.ready_event()

    def library_event(self) -> LibraryChanged:
        return self._rt.library_event()

    async def send(self, command: dict[str, Any]) -> dict[str, Any]:
        """Run one command; raises :class:`LanspreadError` with a sentence on failure."""
        return await dispatch(self._rt, command)

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
    config: PeerConfig,
    registry: Registry,
    tg: anyio.abc.TaskGroup,
    services: Sequence[LocalService] = (),
) -> PeerRuntimeHandle:
    """Boot a peer inside ``tg`` and return its handle once it is listening."""
    runtime = PeerRuntime(config, registry, services)
    handle: PeerRuntimeHandle = await tg.start(runtime.run)
    return handle


class PeerRuntime:
    def __init__(
        self, config: PeerConfig, registry: Registry, services: Sequence[LocalService] = ()
    ) -> None:
        # people recognise a host name, not a hex id; other peers take at most MAX_PEER_NAME
        name = (config.name or default_name(config.listen.port))[:MAX_PEER_NAME]
        if name != config.name:
            config = replace(config, name=name)
        self.config = config
        self.registry = registry
        self.local_services = tuple(services)
        self.bus = EventBus()
        self.ops = OperationTable()
        self.state = StateDir(config.state_dir)
        self.tokens = TransferTokens()
        self.outbound = OutboundTransfers(on_count=self._outbound_count)
        self.runner = OperationRunner(self.ops, self.bus.publish)
        self.handlers = RequestHandlers(self)
        #: manifests other peers sent, by hash: a repeated download asks no one again
        self.manifests = ManifestCache()
        self.identity: Identity
        self.catalog: Catalog
        #: where ``catalog`` comes from: the local file and the party catalog, kept live
        self.catalogs: Catalogs
        self.library: Library
        self.tx: Transactions
        self.served: ServedLibrary
        self.swarm: Swarm
        self.sync: PeerSync
        self.supervisor: Supervisor
        self.endpoint: ControlEndpoint | None = None
        self.failure: str | None = None
        self.stopped = anyio.Event()
        self._stop = anyio.Event()
        self._tg: anyio.abc.TaskGroup
        #: when the outbound-transfers event went out last, and whether one is due
        self._outbound_said = 0.0
        self._outbound_due = False
        self._discovery: list[Any] = []
        self._monitor_scope: anyio.CancelScope | None = None

    # ------------------------------------------------------------- lifecycle
    async def run(self, *, task_status: anyio.abc.TaskStatus[PeerRuntimeHandle]) -> None:
        try:
            with locked(self.state, "a running lanspread peer"):
                await self._run(task_status)
        finally:
            self.bus.close()
            self.stopped.set()

    async def _run(self, task_status: anyio.abc.TaskStatus[PeerRuntimeHandle]) -> None:
        if self.config.provider != AUTO:  # refused now, not after a whole download
            await anyio.to_thread.run_sync(build_provider, self.registry, self.config.provider)
        raise_open_files_limit()  # a download keeps files and connections open
        self.identity = await anyio.to_thread.run_sync(load_or_create_identity, self.state)
        self.served = ServedLibrary(self.identity.peer_id)
        self.catalogs = Catalogs(
            self.state,
            self.config.catalog,
            self.config.party_key,
            self.identity.peer_id,
            self._apply_catalog,
            self.bus.publish,
        )
        self.swarm = Swarm(self.served, self._served_changed, lambda: len(self.sync.table))
        self.sync = PeerSync(
            self.identity.peer_id,
            ControlPool(identity=self.identity),
            self.bus.publish,
            self.greeting,
            lambda: self.served.rev,
            ping_interval=self.config.ping_interval,
            stale_timeout=self.config.stale_timeout,
            library_digest=lambda: self.served.digest,
            in_catalog=lambda game_id: game_id in self.catalog.games,
            party_advert=lambda: self.catalogs.advert(),
            party_offered=lambda peer, key, seq: self.catalogs.offered(peer, key, seq),
            party_document=lambda: self.catalogs.document(),
            library_delta=self.served.delta,
        )
        self._open_games_dir(self.config.games_dir)
        for note in await anyio.to_thread.run_sync(self.tx.recover):
            log.info("recovered: %s", note)
        async with anyio.create_task_group() as tg:
            self._tg = tg
            self.sync.attach(tg)
            self.catalogs.attach(
                lambda peer, message: self.sync.request(peer, message, FETCH_TIMEOUT),
                tg.start_soon,
            )
            self.runner.attach(tg)
            loop = asyncio.get_running_loop()

            # operations begin and end in worker threads; events are published on the loop
            def ops_changed(_snapshot: dict[str, str]) -> None:
                with contextlib.suppress(RuntimeError):  # the loop has closed: nobody to tell
                    loop.call_soon_threadsafe(self._ops_changed)

            self.ops.subscribe(ops_changed)
            self.supervisor = Supervisor(tg, self._fatal)
            await self._start_services()
            self.bus.publish(self.ready_event())
            task_status.started(PeerRuntimeHandle(self))
            await self._stop.wait()
            # an unpack runs in a worker thread, which cancelling the task group
            # would wait for to the end: cancel the operations themselves first
            unfinished = await self.runner.stop_all()
            if unfinished:
                log.warning(
                    "stopping while %s still ends; the next start recovers it",
                    ", ".join(unfinished),
                )
            await self.sync.say_goodbye()
            tg.cancel_scope.cancel()
        self.ops.unsubscribe(ops_changed)
        with anyio.CancelScope(shield=True), anyio.move_on_after(1):
            await self.sync.pool.aclose()

    async def _start_services(self) -> None:
        sup, cfg = self.supervisor, self.config
        data_ready = _Ready()
        sup.start(
            "data",
            Policy.REQUIRED,
            lambda: serve_data(
                cfg.listen.host,
                cfg.data_port,
                self.tokens,
                self.handlers.resolve_transfer,
                self.outbound,
                stream=self.handlers.send_stream,
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
                cfg.listen.host,
                cfg.listen.port,
                self.identity,
                self.handlers.handle,
                task_status=ready,
            ),
        )
        await self._wait_ready(ready, "the control server")
        self.endpoint = ready.value
        monitor_ready = _Ready()
        sup.start("monitor", Policy.BEST_EFFORT, lambda: self._monitor(monitor_ready))
        await self._wait_ready(monitor_ready, "the library scan")
        sup.start("catalog", Policy.BEST_EFFORT, self.catalogs.watch_local)
        for backend in self._backends():
            sup.start(f"discovery:{backend.name}", Policy.RESTART, self._discover_with(backend))
        sup.start("liveness", Policy.RESTART, self.sync.liveness)
        for service in self.local_services:
            await self._start_local(service)

    def _discover_with(self, backend: Any) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            await backend.run(self._announcement(), self.sync)

        return run

    async def _start_local(self, service: LocalService) -> None:
        ready = _Ready()

        async def run() -> None:
            try:
                await service.run(PeerRuntimeHandle(self), ready)
            finally:
                ready.event.set()  # a peer without it still runs (best effort)

        self.supervisor.start(service.name, Policy.BEST_EFFORT, run)
        await ready.event.wait()

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

    def request_stop(self) -> None:
        self._stop.set()

    async def _fatal(self, exc: RequiredServiceFailed) -> None:
        cause = exc.cause
        self.failure = str(cause) if isinstance(cause, LanspreadError) else str(exc)
        if isinstance(cause, ListenError | DataListenError):
            self.failure = listen_failure(cause, self.config)
        self.bus.publish(RuntimeFailed(self.failure))
        self._stop.set()

    def _open_games_dir(self, games_dir: Path) -> None:
        self._use_games_dir(*self._prepare_games_dir(games_dir))

    def _prepare_games_dir(self, games_dir: Path) -> tuple[Path, Catalog]:
        """Make sure ``games_dir`` is a folder (created when missing) and load the
        catalog: everything that can fail, before anything running is let go."""
        games_dir = games_dir.expanduser()
        if games_dir.exists() and not games_dir.is_dir():
            raise UsageError(f"{games_dir} is a file; the games dir is a folder of game folders")
        try:
            games_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(
                f"cannot make the games folder {games_dir}: {exc.strerror or exc}"
            ) from None
        return games_dir, self.catalogs.load()

    def _use_games_dir(self, games_dir: Path, catalog: Catalog) -> None:
        self.config = replace(self.config, games_dir=games_dir)
        self.catalog = catalog
        self.library = Library(games_dir, self.state, catalog)
        self.tx = Transactions(
            games_dir, self.state, self.registry, self.ops, self.config.provider, catalog.games
        )

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

    def greeting(self, cls: type[Hello] | type[HelloAck]) -> Hello | HelloAck:
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

    def ready_event(self) -> Ready:
        assert self.endpoint is not None
        control = str(HostPort(self.endpoint.host, self.endpoint.port))
        return Ready(
            peer_id=self.identity.peer_id,
            name=self.config.name,
            version=__version__,
            control=control,
            listen=[control],
            data_port=self.config.data_port,
            games_dir=str(self.config.games_dir),
            state_dir=str(self.state.path),
        )

    def workshop(self) -> Workshop:
        """What operation bodies use, as the peer is now (the games dir may change)."""
        return Workshop(
            games_dir=self.config.games_dir,
            catalog=self.catalog,
            tx=self.tx,
            ops=self.ops,
            outbound=self.outbound,
            peers=self.sync,
            runner=self.runner,
            state=self.state,
            swarm=self.swarm,
            manifests=self.manifests,
        )

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

    async def _apply_catalog(self, catalog: Catalog) -> None:
        """A new effective catalog (party or local), applied live: the library's
        states, what this peer serves, what it keeps of other peers, the UIs."""
        self.catalog = catalog
        self.tx.catalog_ids = frozenset(catalog.games)
        await anyio.to_thread.run_sync(self.library.set_catalog, catalog)
        await self._library_changed(self.library.rev)
        self.sync.catalog_changed()
        self.sync.ping_all()  # pings carry the party catalog this peer now holds

    async def _library_changed(self, rev: int) -> None:
        _, games = self.library.snapshot()
        before = {gid: info.manifest_hash for gid, info in self.served.games.items()}
        served_changed = self.served.update(rev, games)
        for gid, manifest_hash in before.items():
            now = self.served.games.get(gid)
            if now is None or now.manifest_hash != manifest_hash:
                self.tokens.revoke(gid)  # grants were for content that is gone
        self.bus.publish(self.library_event())
        if served_changed:
            self._served_changed()

    def _served_changed(self) -> None:
        """Tell the other peers at once (discovery, and a ping carrying the new rev)."""
        for disc in self._discovery:
            self._tg.start_soon(self._update_discovery, disc)
        self.sync.ping_all()

    async def _update_discovery(self, disc: Any) -> None:
        try:
            await disc.update(self._announcement())
        except Exception as exc:
            log.debug("discovery update failed: %s", exc)

    def _ops_changed(self) -> None:
        self.bus.publish(self.library_event())

    def active(self) -> list[dict[str, str]]:
        return [{"game_id": k, "kind": str(v)} for k, v in sorted(self.ops.snapshot().items())]

    def library_event(self) -> LibraryChanged:
        rev, games = self.library.snapshot()
        return LibraryChanged(rev, [g.to_json() for g in games], self.active())

    def _outbound_count(self, count: int) -> None:
        """The number of transfers sent now changed: publish it, or soon (see
        :data:`OUTBOUND_EVERY`)."""
        if self._outbound_due:
            return  # the one due reads the count when it goes
        wait = self._outbound_said + OUTBOUND_EVERY - time.monotonic()
        if wait <= 0 or not hasattr(self, "_tg"):
            self._publish_outbound()
            return
        try:
            self._tg.start_soon(self._publish_outbound_after, wait)
        except RuntimeError:  # the peer is stopping: say it now
            self._publish_outbound()
            return
        self._outbound_due = True

    async def _publish_outbound_after(self, wait: float) -> None:
        await anyio.sleep(wait)
        self._publish_outbound()

    def _publish_outbound(self) -> None:
        self._outbound_due = False
        self._outbound_said = time.monotonic()
        self.bus.publish(OutboundEvent(self.outbound.live_count, self.uploads()))

    def uploads(self) -> list[dict[str, Any]]:
        """Who downloads from this peer lately: peer (by name), game, bytes and rate."""
        out = []
        for up in self.outbound.uploads():
            known = self.sync.table.get(up["peer_id"])
            out.append({**up, "name": known.name if known is not None else ""})
        return out

    async def set_game_dir(self, path: Path) -> None:
        if not path.expanduser().is_absolute():
            raise UsageError(
                f"set-game-dir needs an absolute path, not {str(path)!r}: the peer's"
                " working folder is not the caller's"
            )
        if self.ops.snapshot():
            raise CommandError("operations are running; set the games dir when they have ended")
        # a path that cannot be used is refused while the current one still runs
        prepared = await anyio.to_thread.run_sync(self._prepare_games_dir, path)
        if self._monitor_scope is not None:
            self._monitor_scope.cancel()
        await anyio.sleep(0)
        self._use_games_dir(*prepared)
        self.sync.catalog_changed()
        ready = _Ready()
        self.supervisor.start("monitor", Policy.BEST_EFFORT, lambda: self._monitor(ready))
        with anyio.fail_after(120):
            await ready.event.wait()
