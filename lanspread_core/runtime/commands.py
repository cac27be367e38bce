"""The commands a front-end can send to a running peer, by name.

Each takes the command object (``{"cmd": ..., ...}``) and returns a JSON-ready
result or raises :class:`~lanspread_core.errors.LanspreadError` with one
sentence. Documented in ``docs/protocol.md`` (the JSONL section).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import anyio

from lanspread_core.config import HostPort, PeerConfig
from lanspread_core.errors import LanspreadError, UsageError, did_you_mean
from lanspread_core.events import TRANSACTIONS, OpKind, Ready
from lanspread_core.install import localfiles
from lanspread_core.install.transactions import Transactions
from lanspread_core.library.catalog import Catalog
from lanspread_core.library.index import Library
from lanspread_core.library.layout import game_root, is_downloaded
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.party import MAX_DOCUMENT
from lanspread_core.library.served import ServedLibrary
from lanspread_core.library.statedir import StateDir
from lanspread_core.library.versionini import check_version_file
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import AUTO, build_provider
from lanspread_core.runtime.operations import (
    Workshop,
    download_body,
    paused_record,
    stream_install_body,
    transaction,
)
from lanspread_core.runtime.partycatalog import Catalogs
from lanspread_core.runtime.runner import OperationRunner
from lanspread_core.runtime.supervisor import Supervisor
from lanspread_core.runtime.sync import PeerSync
from lanspread_core.runtime.versions import explain
from lanspread_core.transfer import resume
from lanspread_core.wire.schema import clip


class Peer(Protocol):
    """What the commands use of the running peer (and nothing more)."""

    config: PeerConfig
    registry: Registry
    state: StateDir
    catalog: Catalog
    catalogs: Catalogs
    library: Library
    served: ServedLibrary
    ops: OperationTable
    tx: Transactions
    sync: PeerSync
    runner: OperationRunner
    supervisor: Supervisor

    def ready_event(self) -> Ready: ...

    def active(self) -> list[dict[str, str]]: ...

    def uploads(self) -> list[dict[str, Any]]: ...

    def workshop(self) -> Workshop: ...

    def request_stop(self) -> None: ...

    async def set_game_dir(self, path: Path) -> None: ...


Result = dict[str, Any]
Handler = Callable[[Peer, dict[str, Any]], Awaitable[Result]]
COMMANDS: dict[str, Handler] = {}


def command(name: str) -> Callable[[Handler], Handler]:
    def register(func: Handler) -> Handler:
        COMMANDS[name] = func
        return func

    return register


class BadCommand(UsageError):
    pass


#: the longest value of a string argument; a game id is bounded as on the wire
_MAX_ARG = {"game_id": 256}


def _str(cmd: dict[str, Any], key: str) -> str:
    value = cmd.get(key)
    if not isinstance(value, str) or not value:
        raise BadCommand(f"{clip(str(cmd.get('cmd')))} needs a string {key!r}")
    limit = _MAX_ARG.get(key, 4096)
    if len(value) > limit:
        raise BadCommand(f"{key} {clip(value)!r} is longer than {limit} characters")
    return value


def _num(cmd: dict[str, Any], key: str, default: float) -> float:
    value = cmd.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise BadCommand(f"{cmd.get('cmd')}: {key!r} must be a non-negative number")
    return float(value)


def _flag(cmd: dict[str, Any], key: str, default: bool) -> bool:
    value = cmd.get(key, default)
    if not isinstance(value, bool):
        raise BadCommand(f"{cmd.get('cmd')}: {key!r} must be true or false")
    return value


async def dispatch(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    if "cmd" not in cmd and "command" in cmd:  # the long name is accepted too
        cmd = {**cmd, "cmd": cmd["command"]}
    name = cmd.get("cmd")
    handler = COMMANDS.get(name) if isinstance(name, str) else None
    if handler is None:
        raise BadCommand(f"unknown command {name!r}; commands: {', '.join(sorted(COMMANDS))}")
    return await handler(rt, cmd)


@command("status")
async def status(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    rev, games = rt.library.snapshot()
    ready = rt.ready_event().to_json()
    del ready["event"]
    return {
        **ready,
        "peers": len(rt.sync.table),
        "library_rev": rev,
        "games": len(games),
        "serving": sorted(rt.served.games),
        "catalog": rt.catalogs.to_json(),
        "active": rt.active(),
        "uploads": rt.uploads(),
        "services": {
            name: {"running": s.running, "restarts": s.restarts, "last_error": s.last_error}
            for name, s in rt.supervisor.services.items()
        },
    }


@command("peers")
async def peers(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    return {"peers": [p.to_json() for p in rt.sync.table.all()]}


def games_view(rt: Peer) -> list[dict[str, Any]]:
    """Local and remote games together: each with its state here and who serves it."""
    local = {g.id: g.to_json() for g in rt.library.games()}
    holders: dict[str, list[str]] = {}
    partial: dict[str, list[str]] = {}
    #: catalog games peers hold only at other versions: listed, with why (never vanish)
    elsewhere: set[str] = set()
    #: catalog games peers offer only with another manifest than the catalog trusts
    refused: set[str] = set()
    for peer in rt.sync.table.all():
        for gid, info in peer.games.items():
            cat = rt.catalog.get(gid)
            if cat is None or cat.version == info.version:
                trusted = cat.hashes.get("manifest") if cat is not None else None
                if trusted and info.manifest_hash != trusted:
                    refused.add(gid)  # other bytes than the catalog trusts: no source
                    continue
                into = partial if info.partial else holders
                into.setdefault(gid, []).append(peer.peer_id)
            else:
                elsewhere.add(gid)
    view = []
    paused_ids = resume.paused_games(rt.state.game_dir(""))
    ids = local.keys() | holders.keys() | partial.keys() | paused_ids | elsewhere | refused
    for gid in sorted(ids):
        cat = rt.catalog.get(gid)
        entry = local.get(gid) or {
            "id": gid,
            "name": cat.name if cat else gid,
            "version": None,
            "catalog_version": cat.version if cat else None,
            "downloaded": False,
            "installed": False,
            "availability": "remote",
            "size": next((p.games[gid].size for p in rt.sync.table.all() if gid in p.games), 0),
            "manifest_hash": None,
        }
        entry["peers"] = holders.get(gid, [])
        if cat is not None and not entry["peers"] and entry.get("version") != cat.version:
            line = explain_versions(rt, gid)
            if line is not None:
                entry["versions"] = line
        if gid in partial:  # downloading it too: they serve what they verified
            entry["partial_peers"] = partial[gid]
        entry["active"] = rt.ops.kind_of(gid)
        paused = None if entry["active"] else resume.load(paused_record(rt.state, gid))
        if paused is not None:
            entry["paused"] = {
                "version": paused.version,
                "bytes": paused.done,
                "total": paused.total,
            }
        view.append(entry)
    return view


def explain_versions(rt: Peer, gid: str) -> str | None:
    """Why no peer serves the catalog's version of ``gid``, in one line (None: one does,
    or the catalog does not name it)."""
    cat = rt.catalog.get(gid)
    if cat is None:
        return None
    party = rt.catalogs.party_version(gid)
    local = rt.catalogs.local.get(gid)
    party_named = party is not None and party[1] == cat.version
    return explain(
        gid,
        cat.version,
        rt.sync.table.all(),
        party_seq=party[0] if party is not None and party_named else None,
        local_version=local.version if local is not None and party_named else None,
    )


@command("list-games")
async def list_games(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    return {"games": games_view(rt), "active": rt.active(), "library_rev": rt.library.rev}


@command("get-game")
async def get_game(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    gid = _str(cmd, "game_id")
    view = games_view(rt)
    for entry in view:
        if entry["id"] == gid:
            return entry
    line = explain_versions(rt, gid)
    if line is not None:
        raise LanspreadError(line)
    known = [e["id"] for e in view] + list(rt.catalog.games)
    raise LanspreadError(f"no game {gid!r} here or on any known peer{did_you_mean(gid, known)}")


@command("local-changes")
async def local_changes(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    """What the user added to or changed in ``local/`` since the install (a directory walk)."""
    gid = _str(cmd, "game_id")
    root = rt.tx.require_root(gid)
    found = await anyio.to_thread.run_sync(localfiles.changes, rt.tx.state, gid, root)
    return found.to_json()


@command("connect")
async def connect(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    try:
        addr = HostPort.parse(_str(cmd, "addr"))
    except ValueError as exc:
        raise BadCommand(str(exc)) from exc
    peer = await rt.sync.connect(addr.host, addr.port)
    if peer is None:
        raise LanspreadError(f"{addr} is this peer itself")
    return {"peer": peer.to_json()}


@command("wait-peers")
async def wait_peers(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    count = int(_num(cmd, "count", 1))
    timeout = _num(cmd, "timeout_ms", 10_000) / 1000
    return {"peers": await rt.sync.wait_peers(count, timeout)}


@command("fetch")
async def fetch(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    """Ask every known peer for its library now, and answer once they have answered
    (at most 10 s), so a ``list-games`` after it is current."""
    return {"peers": await rt.sync.fetch_all()}


def _newer_on_peers(rt: Peer, gid: str) -> bool:
    """Whether ``update`` should fetch: the catalog names a version we do not hold."""
    cat = rt.catalog.get(gid)
    if cat is None:
        return False
    root = rt.config.games_dir / gid
    return check_version_file(root) != cat.version


def _provider(rt: Peer, cmd: dict[str, Any], kind: OpKind) -> str | None:
    """The ``provider`` an install or update asks for, checked now (None: the peer's own)."""
    if "provider" not in cmd:
        return None
    name = _str(cmd, "provider")
    if kind not in (OpKind.INSTALL, OpKind.UPDATE):
        raise BadCommand(f"{kind} unpacks nothing; 'provider' is for install and update")
    if name != AUTO:
        build_provider(rt.registry, name)  # not installed, or unusable: refused with why
    return name


def _operation(kind: OpKind) -> Handler:
    async def run(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
        gid = _str(cmd, "game_id")
        wait = _flag(cmd, "wait", False)
        game_root(rt.config.games_dir, gid)  # a bad id fails now, not as a later event
        provider = _provider(rt, cmd, kind)
        ws = rt.workshop()
        if kind is OpKind.REMOVE_DOWNLOAD and not rt.ops.kind_of(gid):
            root = game_root(rt.config.games_dir, gid)
            if not is_downloaded(root) and (discarded := await _discard_paused(rt, gid)):
                return {"game_id": gid, "op": str(kind), "discarded": discarded}
        if kind is OpKind.UPDATE and _newer_on_peers(rt, gid):
            return await rt.runner.run(OpKind.DOWNLOAD, gid, download_body(ws, gid, True), wait)
        rt.tx.require_root(gid, to_install=kind is OpKind.INSTALL)  # a missing game fails now
        return await rt.runner.run(kind, gid, transaction(ws, kind, gid, provider), wait)

    return run


for _kind in TRANSACTIONS:
    COMMANDS[str(_kind)] = _operation(_kind)


@command("download")
async def download(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    gid = _str(cmd, "game_id")
    game_root(rt.config.games_dir, gid)
    install = _flag(cmd, "install", True)
    wait = _flag(cmd, "wait", False)
    body = download_body(rt.workshop(), gid, install)
    cat = rt.catalog.get(gid)
    serving = cat is not None and rt.sync.holders(gid, cat.version, partial=True)
    other = any(gid in p.games for p in rt.sync.table.all())
    if cat is not None and other and not serving:
        line = explain_versions(rt, gid)  # the peers have other versions: which ones
        if line is not None:
            raise LanspreadError(line)
    return await rt.runner.run(OpKind.DOWNLOAD, gid, body, wait)


@command("stream-install")
async def stream_install(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    gid = _str(cmd, "game_id")
    game_root(rt.config.games_dir, gid)
    wait = _flag(cmd, "wait", False)
    body = stream_install_body(rt.workshop(), gid)
    return await rt.runner.run(OpKind.STREAM_INSTALL, gid, body, wait)


@command("cancel")
async def cancel(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    gid = _str(cmd, "game_id")
    discard = _flag(cmd, "discard", False)
    if rt.runner.cancel(gid, discard=discard):
        return {"game_id": gid, "cancelling": True, "discard": discard}
    if discard and not rt.ops.kind_of(gid) and (discarded := await _discard_paused(rt, gid)):
        return {"game_id": gid, "discarded": discarded}
    if resume.load(paused_record(rt.state, gid)) is not None:
        raise LanspreadError(
            f"the download of {gid} is paused, not running; 'cancel --discard' deletes"
            " what it fetched, 'download' resumes it"
        )
    raise LanspreadError(f"nothing to cancel for {gid}")


async def _discard_paused(rt: Peer, gid: str) -> int | None:
    """Delete a paused download of ``gid`` (no operation may run); its bytes, or None."""
    record_path = paused_record(rt.state, gid)
    paused = resume.load(record_path)
    if paused is None:
        return None
    root = game_root(rt.config.games_dir, gid)
    await anyio.to_thread.run_sync(resume.discard_paused, root, paused)
    resume.remove(record_path)
    return paused.done


@command("set-game-dir")
async def set_game_dir(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    path = Path(_str(cmd, "path"))
    await rt.set_game_dir(path)
    return {"games_dir": str(rt.config.games_dir)}


@command("publish-catalog")
async def publish_catalog(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    """Take the signed party catalog in the file ``path`` (``lanspread catalog publish``
    wrote it) and offer it to the party; refused, with why, like one from a peer."""
    path = Path(_str(cmd, "path"))

    def read() -> bytes:
        with open(path, "rb") as fh:
            return fh.read(2 * MAX_DOCUMENT + 1)  # more is refused, never read whole

    try:
        text = await anyio.to_thread.run_sync(read)
        if len(text) > 2 * MAX_DOCUMENT:
            raise ValueError(f"it is over {2 * MAX_DOCUMENT:,} bytes")
        document = json.loads(text.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise LanspreadError(f"cannot read the signed catalog {path}: {exc}") from None
    doc = await rt.catalogs.offer(document, None)
    return {"party_key": doc.key, "seq": doc.seq, "games": sorted(rt.catalog.games)}


@command("shutdown")
async def shutdown(rt: Peer, cmd: dict[str, Any]) -> dict[str, Any]:
    rt.request_stop()
    return {"stopping": True}
