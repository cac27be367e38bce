"""The long operations a peer runs for its front-ends, as bodies for ``run_operation``.

Each function checks what can be checked at once (so a command fails in its
own reply) and returns the async body that the runtime runs with lifecycle
events: a local transaction, a download from peers, a stream-install.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from lanspread_core.archive.cancel import CancelToken
from lanspread_core.dataplane.link import DataLink
from lanspread_core.errors import Cancelled, LanspreadError
from lanspread_core.install.transactions import Outcome, TransactionError
from lanspread_core.library.layout import is_downloaded, is_installed
from lanspread_core.runtime.peer import CommandError, OperationBody
from lanspread_core.runtime.peers import RemotePeer
from lanspread_core.system.diskspace import NotEnoughSpace, check_free_space
from lanspread_core.transfer.download import (
    AllSourcesGone,
    Download,
    DownloadJob,
    check_version_file,
    choose_manifest,
    manifests_from,
    sources_for,
)
from lanspread_core.transfer.streamrecv import STREAM_TIMEOUT, receive_stream
from lanspread_core.wire.messages import StreamInstall, TransferGrant

if TYPE_CHECKING:
    from lanspread_core.runtime.peer import PeerRuntime


def transaction(rt: PeerRuntime, kind: str, game_id: str) -> OperationBody:
    """The body of a local transaction: a worker thread, writers exclusive of readers."""
    work = getattr(rt.tx, kind.replace("-", "_"))

    async def body(token: CancelToken) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if kind in ("install", "update"):
            kwargs = {"token": token, "progress": rt.progress_publisher(kind, game_id)}
        if kind in ("update", "remove-download"):
            # readers first: block new transfers, cancel live ones and wait for them
            async with rt.outbound.exclusive(game_id):
                outcome = await anyio.to_thread.run_sync(lambda: work(game_id, **kwargs))
        else:
            outcome = await anyio.to_thread.run_sync(lambda: work(game_id, **kwargs))
        return {"provider": outcome.provider}

    return body


def download_body(rt: PeerRuntime, game_id: str, install: bool) -> OperationBody:
    """Download the catalog version from peers, then install or update it."""
    cat = rt.catalog.get(game_id)
    if cat is None:
        raise CommandError(f"{game_id} is not in the catalog")
    root = rt.config.games_dir / game_id
    if is_downloaded(root) and check_version_file(root) == cat.version:
        raise CommandError(f"{game_id} {cat.version} is already downloaded")

    async def body(token: CancelToken) -> dict[str, Any]:
        job = DownloadJob(game_id, cat.version, install, token.event)
        rt.ops.begin(game_id, "download")
        try:
            async with rt.outbound.exclusive(game_id):
                result = await Download(rt, job).run()
        finally:
            rt.ops.end(game_id)
        if install:
            kind = "update" if is_installed(root) else "install"
            # the install phase has its own lifecycle, so front-ends can show it
            rt.bus.publish({"event": f"{kind}-begin", "game_id": game_id, "after": "download"})
            try:
                installed = await transaction(rt, kind, game_id)(token)
            except LanspreadError as exc:
                rt.bus.publish(
                    {
                        "event": f"{kind}-failed",
                        "game_id": game_id,
                        "op": kind,
                        "error": str(exc),
                    }
                )
                raise
            rt.bus.publish(
                {"event": f"{kind}-finished", "game_id": game_id, "op": kind, **installed}
            )
            result["installed"] = kind
            result["provider"] = installed["provider"]
        return result

    return body


def stream_install_body(rt: PeerRuntime, game_id: str) -> OperationBody:
    """Install by streaming from a validated peer; on failure try the next one."""
    cat = rt.catalog.get(game_id)
    if cat is None:
        raise CommandError(f"{game_id} is not in the catalog")
    if is_installed(rt.config.games_dir / game_id):
        raise CommandError(f"{game_id} is already installed; uninstall it first")

    async def body(token: CancelToken) -> dict[str, Any]:
        peers = sources_for(rt, game_id, cat.version)
        if not peers:
            raise CommandError(f"no peer serves {game_id} {cat.version}")
        # the same validation as a download: only peers agreeing on the manifest
        manifests = await manifests_from(rt, peers, game_id)
        trusted = cat.hashes.get("manifest")
        _, agreeing = choose_manifest(manifests, len(peers), trusted or None)
        failures: list[str] = []
        for peer_id in agreeing:
            peer = rt.peers.get(peer_id)
            if peer is None:
                continue
            try:
                return await stream_from(rt, peer, game_id, token)
            except (Cancelled, NotEnoughSpace, TransactionError):
                raise
            except (LanspreadError, OSError) as exc:
                failures.append(f"{peer_id[:8]}: {exc}")
                rt.bus.publish(
                    {
                        "event": "stream-install-retry",
                        "game_id": game_id,
                        "peer_id": peer_id,
                        "error": str(exc),
                    }
                )
        raise AllSourcesGone(
            f"no peer could stream {game_id}: " + "; ".join(failures or ["none left"])
        )

    return body


async def stream_from(
    rt: PeerRuntime, peer: RemotePeer, game_id: str, token: CancelToken
) -> dict[str, Any]:
    reply = await rt.pool.request(
        peer.host, peer.port, StreamInstall(rt.identity.peer_id, game_id), timeout=15
    )
    if not isinstance(reply, TransferGrant):
        raise CommandError(f"{peer.peer_id[:8]} refused the stream-install")
    progress = rt.progress_publisher("stream-install", game_id, active_peers=1)
    games_dir = rt.config.games_dir
    state = {"done": 0, "total": 0}

    def on_total(total: int) -> None:
        check_free_space(games_dir, total, f"stream-install {game_id}")
        state["total"] = total

    def on_bytes(n: int) -> None:
        state["done"] += n
        progress(state["done"], state["total"])

    def fill(staging: Path) -> Outcome:
        with DataLink(peer.host, timeout=STREAM_TIMEOUT) as link:
            conn = link.request(reply.data_port, reply.token, pipelined=False)
            got = receive_stream(conn, staging, token.event, on_total, on_bytes)
        return Outcome(game_id, "stream-install", None, got.files, got.bytes)

    started = time.monotonic()
    outcome = await anyio.to_thread.run_sync(rt.tx.stream_install, game_id, fill)
    seconds = time.monotonic() - started
    return {
        "peer": peer.peer_id,
        "files": outcome.files,
        "bytes": outcome.bytes,
        "seconds": round(seconds, 3),
        "rate": outcome.bytes / seconds if seconds else 0.0,
    }
