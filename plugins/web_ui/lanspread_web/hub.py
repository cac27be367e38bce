"""The page's live model: one subscription to the peer's events, fanned out to every tab.

The hub follows the peer the way the console does. Operation progress comes
straight from ``<op>-progress`` events; the library and the peers are
re-queried (``list-games``, ``peers``) when an event says they changed, and
after ``events-dropped``, coalesced so a burst costs one query. Every query
yields a complete **snapshot** (games with their words from the shared
vocabulary, peers, running operations, last errors, uploads); a page that
connects, reconnects or fell behind starts from one, so a finished operation
never keeps a spinner.

Messages go to each tab as JSON text, serialised once per message. A tab
whose queue overflows (a stalled browser) loses its queue and gets the next
snapshot instead: the same rule as the peer's own ``events-dropped``.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from typing import Any

import anyio

from lanspread_core.errors import LanspreadError
from lanspread_core.events import (
    Event,
    EventsDropped,
    LibraryChanged,
    OpBegin,
    OpCancelled,
    OpEvent,
    OpFailed,
    OpFinished,
    OpProgress,
    OutboundTransfers,
    PeerJoined,
    PeerLeft,
    PeerLibrary,
    RuntimeFailed,
)
from lanspread_core.frontends.vocabulary import TABLE, failure, game_words, op_name
from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

#: least seconds between two re-queries of the library
REQUERY_EVERY = 0.2
#: least seconds between two progress messages to the pages: each one costs a
#: browser a layout and a paint, on the machine that is downloading
PROGRESS_EVERY = 0.5
#: seconds between re-reads of the peer list while a page is open ("last seen")
PEERS_EVERY = 5.0
#: messages a tab may have waiting before it is sent a snapshot instead
QUEUE_MAX = 512
#: application log records kept for a page that opens later
LOG_KEEP = 1000

_REQUERY = (LibraryChanged, PeerJoined, PeerLeft, PeerLibrary, EventsDropped)


class Tab:
    """One open page's queue of messages."""

    def __init__(self) -> None:
        self.queue: collections.deque[str] = collections.deque()
        self.wakeup = anyio.Event()
        self.closed = False
        self.overflowed = False

    def push(self, message: str) -> None:
        if len(self.queue) >= QUEUE_MAX:
            self.queue.clear()
            self.overflowed = True  # the hub sends a snapshot next
        self.queue.append(message)
        self.wakeup.set()

    def take(self) -> list[str]:
        taken = list(self.queue)
        self.queue.clear()
        self.wakeup = anyio.Event()
        return taken

    def close(self) -> None:
        self.closed = True
        self.wakeup.set()


class LogBuffer(logging.Handler):
    """Application log records of this run, for the page's log view.

    ``emit`` may run in any thread (installs log from worker threads); records
    reach the hub on the event loop.
    """

    def __init__(self, hub: Hub, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logging.DEBUG)
        self.hub = hub
        self.loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(("uvicorn", "lanspread_web.hub")):
            return  # the page's own plumbing would echo itself
        try:
            entry = {
                "t": record.created,
                "level": record.levelname,
                "name": record.name,
                "message": record.getMessage(),
            }
            self.loop.call_soon_threadsafe(self.hub.log_record, entry)
        except Exception:  # a closed loop at shutdown; logging must never raise
            pass


class Hub:
    """What every open page is shown, kept current from the peer's events."""

    def __init__(self, handle: PeerRuntimeHandle) -> None:
        self.handle = handle
        self.tabs: set[Tab] = set()
        self.games: list[dict[str, Any]] = []
        self.peers: list[dict[str, Any]] = []
        self.active: dict[str, str] = {}
        self.ops: dict[str, dict[str, Any]] = {}
        self.errors: dict[str, dict[str, str]] = {}
        self.uploads: dict[str, Any] = {"count": 0, "uploads": None}
        self.failed: str | None = None
        self.logs: collections.deque[dict[str, Any]] = collections.deque(maxlen=LOG_KEEP)
        self._requery = anyio.Event()
        self._progressed: set[str] = set()
        self._progress = anyio.Event()
        self._snapshot_text = ""
        self._closed = False

    # ------------------------------------------------------------- running
    async def run(self) -> None:
        """Follow the peer until cancelled (the web service stops with the peer)."""
        events = self.handle.events()
        handler = LogBuffer(self, asyncio.get_running_loop())
        logging.getLogger().addHandler(handler)
        try:
            await self.refresh()
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._requerier)
                tg.start_soon(self._peer_poller)
                tg.start_soon(self._progress_sender)
                async for event in events:
                    self.apply(event)
                tg.cancel_scope.cancel()
        finally:
            logging.getLogger().removeHandler(handler)
            events.close()
            self.close()

    def close(self) -> None:
        self._closed = True
        for tab in list(self.tabs):
            tab.close()

    async def _requerier(self) -> None:
        while True:
            await self._requery.wait()
            self._requery = anyio.Event()
            await self.refresh()
            await anyio.sleep(REQUERY_EVERY)

    async def _progress_sender(self) -> None:
        """Send the latest progress of each operation, at most every PROGRESS_EVERY."""
        while True:
            await self._progress.wait()
            self._progress = anyio.Event()
            for gid in sorted(self._progressed):
                if gid in self.ops:
                    self.broadcast({"type": "op", "game_id": gid, "op": self.ops[gid]})
            self._progressed.clear()
            await anyio.sleep(PROGRESS_EVERY)

    async def _peer_poller(self) -> None:
        while True:
            await anyio.sleep(PEERS_EVERY)
            if self.tabs:
                await self._refresh_peers()

    async def refresh(self) -> None:
        """Re-read the library and the peers; send every tab the new snapshot."""
        try:
            listing = await self.handle.send({"cmd": "list-games"})
            peers = await self.handle.send({"cmd": "peers"})
            status = await self.handle.send({"cmd": "status"})
        except LanspreadError as exc:
            log.debug("web page refresh failed: %s", exc)
            return
        self.games = list(listing.get("games", []))
        self.peers = list(peers.get("peers", []))
        self.active = {a["game_id"]: a["kind"] for a in listing.get("active", [])}
        # an operation whose end was missed (dropped events) must not keep its bar
        for gid in list(self.ops):
            if gid not in self.active:
                del self.ops[gid]
        for gid, kind in self.active.items():
            self.ops.setdefault(gid, _new_op(kind))
        if "uploads" in status:  # newer peers list each upload
            self.uploads = {"count": len(status["uploads"]), "uploads": status["uploads"]}
        self._snapshot_text = ""
        self.broadcast_snapshot()

    async def _refresh_peers(self) -> None:
        try:
            peers = await self.handle.send({"cmd": "peers"})
        except LanspreadError:
            return
        self.peers = list(peers.get("peers", []))
        self.broadcast({"type": "peers", "peers": self.peers, "at": time.time()})

    # -------------------------------------------------------------- events
    def apply(self, event: Event) -> None:
        if isinstance(event, _REQUERY):
            self._requery.set()
        if isinstance(event, OutboundTransfers):
            body = event.to_json()
            self.uploads = {"count": body.get("count", 0), "uploads": body.get("uploads")}
            self.broadcast({"type": "uploads", **self.uploads})
        elif isinstance(event, RuntimeFailed):
            self.failed = failure(event)
            self.broadcast({"type": "failed", "error": self.failed})
        elif isinstance(event, OpEvent):
            self._apply_op(event)

    def _apply_op(self, event: OpEvent) -> None:
        gid, kind = event.game_id, str(event.kind)
        if isinstance(event, OpBegin):
            self.ops[gid] = _new_op(kind)
            self.errors.pop(gid, None)
            self.broadcast({"type": "op", "game_id": gid, "op": self.ops[gid]})
        elif isinstance(event, OpProgress):
            op = self.ops.get(gid)
            if op is None:
                if gid not in self.active:
                    return  # a straggler after the end must not bring the bar back
                op = self.ops[gid] = _new_op(kind)
            op.update(
                kind=kind,
                bytes=event.done,
                total=event.total,
                rate=event.rate,
                eta=event.eta,
                active_peers=event.active_peers,
                sources=self._sources(event),
            )
            self._snapshot_text = ""  # a new tab sees the latest numbers
            self._progressed.add(gid)
            self._progress.set()
        else:
            self.ops.pop(gid, None)
            self.active.pop(gid, None)
            if isinstance(event, OpCancelled):
                self.errors[gid] = {"level": "note", "text": failure(event)}
            elif isinstance(event, OpFailed):
                # -all-peers-gone then -failed: the first sentence stays
                if self.errors.get(gid, {}).get("op") != kind:
                    self.errors[gid] = {"level": "error", "text": failure(event), "op": kind}
            elif isinstance(event, OpFinished):
                self.errors.pop(gid, None)
            self.broadcast(
                {"type": "end", "game_id": gid, "kind": kind, "error": self.errors.get(gid)}
            )
            self._requery.set()

    def _sources(self, event: OpProgress) -> list[dict[str, Any]]:
        """Each source by name with its rate; the runtime names them when it can."""
        names = {p.get("peer_id"): p.get("name") for p in self.peers}
        if event.sources is not None:
            return [
                {
                    "peer_id": s.get("peer_id"),
                    "name": s.get("name")
                    or names.get(s.get("peer_id"))
                    or str(s.get("peer_id", ""))[:8],
                    "rate": s.get("rate", 0),
                    "partial": bool(s.get("partial")),
                }
                for s in event.sources
            ]
        return [
            {"peer_id": pid, "name": names.get(pid) or pid[:8], "rate": rate}
            for pid, rate in sorted((event.peers or {}).items())
        ]

    def log_record(self, entry: dict[str, Any]) -> None:
        self.logs.append(entry)
        self.broadcast({"type": "log", "record": entry})

    # ------------------------------------------------------------ messages
    def snapshot(self) -> dict[str, Any]:
        ready = self.handle.ready_event()
        return {
            "type": "snapshot",
            "me": {"peer_id": ready.peer_id, "name": ready.name, "control": ready.control},
            "games": [{**g, "words": game_words(g)} for g in self.games],
            "peers": self.peers,
            "ops": self.ops,
            "errors": self.errors,
            "uploads": self.uploads,
            "failed": self.failed,
            "at": time.time(),
        }

    def snapshot_text(self) -> str:
        if not self._snapshot_text:
            self._snapshot_text = json.dumps(self.snapshot())
        return self._snapshot_text

    def hello(self) -> list[str]:
        """What a page gets first: the words, then the snapshot and the log so far."""
        return [
            json.dumps({"type": "vocabulary", "table": TABLE, "ops": _OP_NAMES}),
            self.snapshot_text(),
            json.dumps({"type": "logs", "records": list(self.logs)}),
        ]

    def broadcast_snapshot(self) -> None:
        text = self.snapshot_text()
        for tab in list(self.tabs):
            tab.overflowed = False
            tab.push(text)

    def broadcast(self, message: dict[str, Any]) -> None:
        if message.get("type") != "snapshot":
            self._snapshot_text = ""  # what a new tab gets must include this change
        if not self.tabs:
            return
        text = json.dumps(message)
        for tab in list(self.tabs):
            tab.push(text)
            if tab.overflowed:
                tab.overflowed = False
                tab.push(self.snapshot_text())

    def open_tab(self) -> Tab:
        tab = Tab()
        for text in self.hello():
            tab.push(text)
        if self._closed:
            tab.close()
        else:
            self.tabs.add(tab)
        return tab

    def close_tab(self, tab: Tab) -> None:
        self.tabs.discard(tab)


_OP_NAMES = {k: op_name(k) for k in TABLE["doing"]}


def _new_op(kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "bytes": 0,
        "total": 0,
        "rate": 0,
        "eta": None,
        "active_peers": 0,
        "sources": [],
    }
