"""The long operations a peer runs for its front-ends, as bodies for the runner.

Each function checks what can be checked at once (so a command fails in its
own reply) and returns the async body the
:class:`~lanspread_core.runtime.runner.OperationRunner` runs with lifecycle
events: a local transaction, a download from peers, a stream-install. They
see the peer through :class:`Workshop`, the handful of parts they use.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from lanspread_core.archive.cancel import CancelToken
from lanspread_core.archive.filehashes import FileCheck
from lanspread_core.dataplane.link import DataLink
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.errors import (
    Cancelled,
    CommandError,
    DiskWriteError,
    LanspreadError,
    did_you_mean,
)
from lanspread_core.events import (
    INSTALL_FAILED_AFTER_DOWNLOAD,
    Event,
    OpBegin,
    OpFailed,
    OpFinished,
    OpKind,
    StreamInstallRetry,
)
from lanspread_core.install.transactions import Outcome, TransactionError, Transactions
from lanspread_core.library.catalog import Catalog
from lanspread_core.library.layout import is_downloaded, is_installed, root_archives
from lanspread_core.library.manifest import Manifest
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.statedir import StateDir
from lanspread_core.library.versionini import check_version_file
from lanspread_core.plugin.selection import chosen_name, readers
from lanspread_core.runtime.runner import OperationBody, OperationRunner
from lanspread_core.runtime.swarm import Swarm
from lanspread_core.system.diskspace import NotEnoughSpace, check_free_space
from lanspread_core.transfer.download import Download, DownloadJob
from lanspread_core.transfer.resume import RECORD
from lanspread_core.transfer.sources import (
    AllSourcesGone,
    ManifestCache,
    PeerAccess,
    Source,
    agreed_sources,
    named,
)
from lanspread_core.transfer.streamrecv import STREAM_TIMEOUT, receive_stream
from lanspread_core.wire.messages import StreamInstall, TransferGrant

STREAM_GRANT_TIMEOUT = 15.0


@dataclass(frozen=True)
class Workshop:
    """What the operation bodies use of the running peer, as it is right now."""

    games_dir: Path
    catalog: Catalog
    tx: Transactions
    ops: OperationTable
    outbound: OutboundTransfers
    peers: PeerAccess
    runner: OperationRunner
    state: StateDir
    swarm: Swarm
    #: manifests the peers sent before, kept for the peer's lifetime
    manifests: ManifestCache = field(default_factory=ManifestCache)

    def publish(self, event: Event) -> None:
        self.runner.publish(event)


def paused_record(state: StateDir, game_id: str) -> Path:
    """Where a download of ``game_id`` records its verified chunks for a resume."""
    return state.game_dir(game_id) / RECORD


def transaction(
    ws: Workshop, kind: OpKind, game_id: str, provider: str | None = None
) -> OperationBody:
    """The body of a local transaction: a worker thread, writers exclusive of readers.

    ``provider`` (install and update) names the archive provider for this one
    operation instead of the peer's ``--provider``.
    """
    tx = ws.tx
    work = {
        OpKind.INSTALL: tx.install,
        OpKind.UPDATE: tx.update,
        OpKind.UNINSTALL: tx.uninstall,
        OpKind.REMOVE_DOWNLOAD: tx.remove_download,
    }[kind]

    async def body(token: CancelToken) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if kind in (OpKind.INSTALL, OpKind.UPDATE):
            kwargs = {"token": token, "progress": ws.runner.progress(kind, game_id)}
            # the catalog's per-file hashes, checked when they are for the downloaded version
            kwargs["trusted"] = ws.catalog.get(game_id)
            if provider is not None:
                kwargs["provider"] = provider
        if kind in (OpKind.UPDATE, OpKind.REMOVE_DOWNLOAD):
            # readers first: block new transfers, cancel live ones and wait for them
            async with ws.outbound.exclusive(game_id):
                outcome = await anyio.to_thread.run_sync(lambda: work(game_id, **kwargs))
        else:
            outcome = await anyio.to_thread.run_sync(lambda: work(game_id, **kwargs))
        return {"provider": outcome.provider}

    return body


def download_body(ws: Workshop, game_id: str, install: bool) -> OperationBody:
    """Download the catalog version from peers, then install or update it."""
    cat = ws.catalog.get(game_id)
    if cat is None:
        raise CommandError(
            f"{game_id} is not in the catalog{did_you_mean(game_id, ws.catalog.games)}"
        )
    root = ws.games_dir / game_id
    if is_downloaded(root) and check_version_file(root) == cat.version:
        raise CommandError(f"{game_id} {cat.version} is already downloaded")
    trusted = cat.hashes.get("manifest") or None
    version = cat.version

    def serve_verified(
        manifest: Manifest, verified: frozenset[int], fetching: frozenset[int]
    ) -> None:
        ws.swarm.update(game_id, version, manifest, verified, fetching)

    async def body(token: CancelToken) -> dict[str, Any]:
        job = DownloadJob(
            game_id,
            version,
            install,
            token.event,
            trusted,
            record=paused_record(ws.state, game_id),
            discard=lambda: ws.runner.discarding(game_id),
        )
        ws.ops.begin(game_id, OpKind.DOWNLOAD)
        try:
            # uploads of the version being replaced end before its files change;
            # from now on only the verified chunks of the new one are served
            async with ws.outbound.exclusive(game_id):
                pass
            download = Download(
                job,
                ws.games_dir,
                ws.peers,
                ws.publish,
                on_verified=serve_verified,
                quiesce=lambda: ws.outbound.exclusive(game_id),
                manifests=ws.manifests,
            )
            try:
                result = await download.run()
            finally:
                ws.swarm.end(game_id)
        finally:
            ws.ops.end(game_id)
        if install:
            kind = OpKind.UPDATE if is_installed(root) else OpKind.INSTALL
            # the install phase has its own lifecycle, so front-ends can show it
            ws.publish(OpBegin(kind, game_id, after="download"))
            try:
                installed = await transaction(ws, kind, game_id)(token)
            except LanspreadError as exc:
                ws.publish(OpFailed(kind, game_id, str(exc)))
                if isinstance(exc, Cancelled):
                    raise
                # the download itself succeeded: say so, and what could install it
                hint = await anyio.to_thread.run_sync(install_hint, ws, kind, game_id, exc)
                raise CommandError(f"{game_id} {INSTALL_FAILED_AFTER_DOWNLOAD}{exc}{hint}") from exc
            ws.publish(OpFinished(kind, game_id, installed))
            result["installed"] = str(kind)
            result["provider"] = installed["provider"]
        return result

    return body


def install_hint(ws: Workshop, kind: OpKind, game_id: str, exc: LanspreadError) -> str:
    """``; try 'lanspread install GAME --provider NAME'`` when another installed
    provider reads the archives the failed one could not; else nothing."""
    if isinstance(exc, NotEnoughSpace | DiskWriteError):
        return ""  # no provider fixes a full disk
    archives = root_archives(ws.games_dir / game_id)
    if not archives:
        return ""
    registry, configured = ws.tx.registry, ws.tx.provider
    failed = chosen_name(registry, configured, archives)
    others = [name for name in readers(registry, archives) if name != failed]
    if not others:
        return ""
    verb = "update" if kind is OpKind.UPDATE else "install"
    return f"; try 'lanspread {verb} {game_id} --provider {others[0]}'"


def stream_install_body(ws: Workshop, game_id: str) -> OperationBody:
    """Install by streaming from a validated peer; on failure try the next one."""
    cat = ws.catalog.get(game_id)
    if cat is None:
        raise CommandError(
            f"{game_id} is not in the catalog{did_you_mean(game_id, ws.catalog.games)}"
        )
    if is_installed(ws.games_dir / game_id):
        raise CommandError(f"{game_id} is already installed; uninstall it first")
    trusted = cat.hashes.get("manifest") or None

    async def body(token: CancelToken) -> dict[str, Any]:
        # the same validation as a download: only peers agreeing on the manifest
        _, agreeing = await agreed_sources(
            ws.peers, game_id, cat.version, trusted, cache=ws.manifests
        )
        failures: list[str] = []
        for peer in agreeing:
            if not ws.peers.is_present(peer.peer_id):
                continue
            try:
                return await stream_from(ws, peer, game_id, token)
            except (Cancelled, NotEnoughSpace, TransactionError):
                raise
            except (LanspreadError, OSError) as exc:
                failures.append(f"{peer.peer_id[:8]}: {exc}")
                ws.publish(StreamInstallRetry(game_id, peer.peer_id, str(exc)))
        raise AllSourcesGone(
            f"no peer could stream {game_id}: " + "; ".join(failures or ["none left"])
        )

    return body


async def stream_from(
    ws: Workshop, peer: Source, game_id: str, token: CancelToken
) -> dict[str, Any]:
    reply = await ws.peers.request(
        peer, StreamInstall(ws.peers.self_id, game_id), STREAM_GRANT_TIMEOUT
    )
    if not isinstance(reply, TransferGrant):
        raise CommandError(f"{peer.peer_id[:8]} refused the stream-install")
    progress = ws.runner.progress(OpKind.STREAM_INSTALL, game_id, active_peers=1)
    games_dir = ws.games_dir
    state = {"done": 0, "total": 0}

    def on_total(total: int) -> None:
        check_free_space(games_dir, total, f"stream-install {game_id}")
        state["total"] = total

    def on_bytes(n: int) -> None:
        state["done"] += n
        progress(state["done"], state["total"])

    # the catalog's per-file hashes bind the streamed files to what its author packed
    cat = ws.catalog.get(game_id)
    check = None
    if cat is not None and cat.files:
        check = FileCheck(cat.files, f"the stream from peer {named(peer)}")

    def fill(staging: Path) -> Outcome:
        with DataLink(peer.host, timeout=STREAM_TIMEOUT) as link:
            conn = link.request(reply.data_port, reply.token, pipelined=False)
            got = receive_stream(conn, staging, token.event, on_total, on_bytes, check)
        return Outcome(game_id, "stream-install", None, got.files, got.bytes)

    started = time.monotonic()
    source = f"peer {peer.peer_id[:8]} at {peer.host}"
    outcome = await anyio.to_thread.run_sync(ws.tx.stream_install, game_id, fill, source)
    seconds = time.monotonic() - started
    return {
        "peer": peer.peer_id,
        "files": outcome.files,
        "bytes": outcome.bytes,
        "seconds": round(seconds, 3),
        "rate": outcome.bytes / seconds if seconds else 0.0,
    }
