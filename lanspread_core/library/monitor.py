"""The local monitor: keeps the library in step with the games directory (DESIGN §4).

A watchdog observer watches the games directory and each game root, all
non-recursively: ``local/`` belongs to the user and can hold a whole installed
game, so recursing into it would spend watches and wake us for every save file.
Watches follow roots as they appear, vanish or are replaced.

Events arrive on watchdog's threads. They are mapped to game ids there and
handed to the event loop with ``loop.call_soon_threadsafe`` (never a blocking
call: the observer holds its lock while dispatching, and a worker thread of ours
may be waiting for that lock to add a watch). On the loop:

* an event for a game with an active operation is dropped; when the operation
  ends (the OperationTable tells us) the game is rescanned once;
* each id waits for a quiet period (``debounce``) so a burst becomes one rescan;
* each id has at most one rescan running; events for an id whose rescan is
  running mark it pending, and it is rescanned once more when that one ends.
  Different ids rescan in parallel, so a long hash of one game does not delay
  the others (the library still hashes one root at a time);
* a full rescan runs every ``fallback_interval`` seconds, for whatever events
  were missed (queue overflow, changes deep inside a root, network mounts).

Only "created", "deleted", "moved", "closed after writing" and attribute events
matter: plain "modified" events are ignored so a file being copied in is hashed
once when it is closed, not after every write.

``on_change(rev)`` contract: an async callable, awaited on the event loop once
after the initial scan (before ``task_status.started()``, so the caller starts
from a known rev) and then after refreshes that changed the library, with the
current ``library_rev``. Calls never overlap, come in increasing rev order and
are coalesced: changes that land while a call runs produce one more call with
the latest rev, never a queue of stale ones. A slow ``on_change`` therefore
delays notifications but never rescans. An exception from it ends the monitor
(the supervisor's policy decides what next).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
from collections.abc import Awaitable, Callable, Iterable

import anyio
import anyio.from_thread
import anyio.to_thread
from anyio.abc import TaskGroup, TaskStatus
from watchdog.events import (
    DirAttribEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileAttribEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from lanspread_core.library import layout
from lanspread_core.library.index import Library, LibraryError, is_root_name
from lanspread_core.library.operations import OperationTable

log = logging.getLogger(__name__)

OnChange = Callable[[int], Awaitable[None]]

#: Event classes we subscribe to. FileModifiedEvent is listed only because
#: watchdog asks inotify for IN_ATTRIB through it; the handler drops it.
_EVENT_FILTER: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    DirCreatedEvent,
    FileDeletedEvent,
    DirDeletedEvent,
    FileMovedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileModifiedEvent,
    FileAttribEvent,
    DirAttribEvent,
]
_IGNORED_TYPES = frozenset({"modified", "opened", "closed_no_write"})
#: Root-level names whose churn never changes the library: the downloader's and
#: transactions' scratch space. ``local`` is not here: it appearing or going is
#: the install predicate.
_SCRATCH = layout.RESERVED - {layout.LOCAL}
#: Worker threads the monitor may hold at once (the library hashes one root at a
#: time regardless; the rest are cheap fingerprint scans).
_THREADS = 4


async def run_monitor(
    library: Library,
    ops: OperationTable,
    on_change: OnChange,
    *,
    fallback_interval: float = 300.0,
    debounce: float = 0.1,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Watch ``library.games_dir`` until cancelled.

    Watches first, then does a full refresh (so nothing changes unseen in
    between), calls ``on_change`` once, then ``task_status.started()``. The observer is stopped and
    joined on the way out, whatever the reason.
    """
    monitor = _Monitor(library, ops, on_change, debounce)
    await monitor.run(fallback_interval, task_status)


class _Monitor:
    def __init__(
        self, library: Library, ops: OperationTable, on_change: OnChange, debounce: float
    ) -> None:
        self.library = library
        self.ops = ops
        self.on_change = on_change
        self.debounce = debounce
        self.games_dir = os.path.abspath(library.games_dir)
        self._limiter = anyio.CapacityLimiter(_THREADS)
        # Loop-side state, touched only on the event loop thread.
        self._dirty: dict[str, float] = {}  # id -> time of its latest event
        self._running: set[str] = set()
        self._full_wanted = False
        self._full_running = False
        self._wake = anyio.Event()
        self._changed = anyio.Event()
        self._ops_dirty = anyio.Event()
        self._busy: dict[str, str] = {}
        self._last_rev = -1
        # Watch bookkeeping, touched only in worker threads, under its lock.
        self._watch_lock = threading.Lock()
        self._watches: dict[str, tuple[ObservedWatch, tuple[int, int]]] = {}
        self._observer: BaseObserver = Observer()
        self._handler = _Handler(self)
        self._loop: asyncio.AbstractEventLoop | None = None

    async def run(self, fallback_interval: float, task_status: TaskStatus[None]) -> None:
        self._loop = asyncio.get_running_loop()
        self.ops.subscribe(self._ops_changed)
        self._observer.start()
        try:
            self._busy = self.ops.snapshot()
            await self._in_thread(self.library.set_busy, self._busy)
            await self._in_thread(self._full_scan)
            self._last_rev = self.library.rev
            await self.on_change(self._last_rev)
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._notifier)
                tg.start_soon(self._ops_watcher)
                tg.start_soon(self._fallback, fallback_interval)
                tg.start_soon(self._scheduler, tg)
                task_status.started()
        finally:
            self._loop = None  # late callbacks from other threads become no-ops
            self.ops.unsubscribe(self._ops_changed)
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self._stop_observer)

    # -- from other threads ------------------------------------------------

    def post(self, callback: Callable[..., None], *args: object) -> None:
        """Run ``callback(*args)`` on the loop thread soon; never blocks."""
        loop = self._loop
        if loop is None:
            return
        # RuntimeError: the loop is closing, so the monitor is on its way out.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(callback, *args)

    def _ops_changed(self, _snapshot: dict[str, str]) -> None:
        # The snapshot passed in may be overtaken by a later one delivered first
        # (OperationTable notifies outside its lock), so the loop re-reads it.
        self.post(self._ops_dirty.set)

    # -- on the loop thread ------------------------------------------------

    def on_paths(self, ids: Iterable[str]) -> None:
        now = anyio.current_time()
        for game_id in ids:
            if self.ops.kind_of(game_id) is not None:
                continue  # gated: the operation's end triggers the rescan
            self._dirty[game_id] = now
            self._wake.set()

    async def _ops_watcher(self) -> None:
        """Apply operation begins and ends: availability now, a rescan after an end."""
        while True:
            await self._ops_dirty.wait()
            self._ops_dirty = anyio.Event()
            snapshot = self.ops.snapshot()
            if snapshot == self._busy:
                continue
            touched = snapshot.keys() ^ self._busy.keys()
            self._busy = snapshot
            # Serialized here, with a fresh snapshot each time, so a stale one can
            # never be applied after a newer one.
            if await self._in_thread(self.library.set_busy, snapshot):
                self._changed.set()
            # An end: the disk settled, rescan now (no debounce). A begin: the
            # rescan reads nothing but lists a root that is new (a download).
            for game_id in touched:
                self._dirty[game_id] = -math.inf
            if touched:
                self._wake.set()

    async def _fallback(self, interval: float) -> None:
        while True:
            await anyio.sleep(interval)
            self._full_wanted = True
            self._wake.set()

    async def _scheduler(self, tg: TaskGroup) -> None:
        while True:
            self._wake = anyio.Event()
            now = anyio.current_time()
            if self._full_wanted and not self._full_running:
                self._full_wanted = False
                self._full_running = True
                tg.start_soon(self._run_full)
            for game_id in [k for k, t in self._dirty.items() if k not in self._running]:
                if now - self._dirty[game_id] >= self.debounce:
                    del self._dirty[game_id]
                    self._running.add(game_id)
                    tg.start_soon(self._run_one, game_id)
            waiting = [t for k, t in self._dirty.items() if k not in self._running]
            with anyio.move_on_after(min(waiting, default=math.inf) + self.debounce - now):
                await self._wake.wait()

    async def _run_one(self, game_id: str) -> None:
        try:
            if await self._in_thread(self._scan_one, game_id):
                self._changed.set()
        finally:
            self._running.discard(game_id)
            self._wake.set()  # it may have become pending meanwhile

    async def _run_full(self) -> None:
        try:
            if await self._in_thread(self._full_scan):
                self._changed.set()
        finally:
            self._full_running = False
            self._wake.set()

    async def _notifier(self) -> None:
        while True:
            await self._changed.wait()
            self._changed = anyio.Event()
            rev = self.library.rev
            if rev != self._last_rev:
                self._last_rev = rev
                await self.on_change(rev)

    async def _in_thread(self, func: Callable[..., bool], *args: object) -> bool:
        try:
            return await anyio.to_thread.run_sync(func, *args, limiter=self._limiter)
        except LibraryError as exc:
            log.warning("%s; retrying at the next event or fallback scan", exc)
            return False

    # -- in worker threads -------------------------------------------------

    def _full_scan(self) -> bool:
        self._sync_all_watches()
        return self.library.refresh(check=anyio.from_thread.check_cancelled)

    def _scan_one(self, game_id: str) -> bool:
        self._sync_watch(game_id)
        return self.library.refresh_game(game_id, check=anyio.from_thread.check_cancelled)

    def _sync_all_watches(self) -> None:
        self._sync_path("", self.games_dir)
        try:
            with os.scandir(self.games_dir) as it:
                names = {e.name for e in it if is_root_name(e.name)}
        except OSError:
            names = set()
        with self._watch_lock:
            watched = set(self._watches) - {""}
        for game_id in sorted(names | watched):
            self._sync_watch(game_id)

    def _sync_watch(self, game_id: str) -> None:
        if is_root_name(game_id):
            self._sync_path(game_id, os.path.join(self.games_dir, game_id))

    def _sync_path(self, key: str, path: str) -> None:
        """Watch ``path`` under ``key`` ("" for the games dir) if it is a folder.

        Keyed by device and inode: a folder deleted and made again under the
        same name needs a new inotify watch, the old one died with the folder.
        """
        try:
            st = os.stat(path)
            ident = (st.st_dev, st.st_ino) if os.path.isdir(path) else None
        except OSError:
            ident = None
        with self._watch_lock:
            current = self._watches.get(key)
            if current is not None and current[1] == ident:
                return
            if current is not None:
                del self._watches[key]
                with contextlib.suppress(KeyError, OSError):
                    self._observer.unschedule(current[0])
            if ident is None:
                return
            try:
                watch = self._observer.schedule(
                    self._handler, path, recursive=False, event_filter=_EVENT_FILTER
                )
            except OSError as exc:
                log.warning("cannot watch %s (%s); the fallback scan covers it", path, exc)
                return
            self._watches[key] = (watch, ident)

    def _stop_observer(self) -> None:
        self._observer.stop()
        self._observer.join()

    # -- event mapping (watchdog threads) ----------------------------------

    def ids_for(self, event: FileSystemEvent) -> set[str]:
        """The game ids an event touches; scratch-space churn maps to none."""
        ids: set[str] = set()
        prefix = self.games_dir + os.sep
        for raw in (event.src_path, getattr(event, "dest_path", "")):
            path = os.fsdecode(raw)
            if not path.startswith(prefix):
                continue
            parts = path[len(prefix) :].split(os.sep)
            if not is_root_name(parts[0]):
                continue
            if len(parts) > 1 and parts[1] in _SCRATCH:
                continue
            ids.add(parts[0])
        return ids


class _Handler(FileSystemEventHandler):
    def __init__(self, monitor: _Monitor) -> None:
        self._monitor = monitor

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type in _IGNORED_TYPES:
            return
        ids = self._monitor.ids_for(event)
        if ids:
            self._monitor.post(self._monitor.on_paths, ids)


__all__ = ["OnChange", "run_monitor"]
