"""The operation table: at most one local operation per game at a time.

Install, update, uninstall, remove-download, download and stream-install all
take the game's slot first; a second operation on a busy game is refused with
the reason. Thread-safe, because blocking work runs in worker threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from lanspread_core.errors import LanspreadError


class GameBusy(LanspreadError):
    pass


class OperationTable:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[str, str] = {}
        self._listeners: list[Callable[[dict[str, str]], None]] = []

    def snapshot(self) -> dict[str, str]:
        """The authoritative set of active operations: game id -> kind."""
        with self._lock:
            return dict(self._active)

    def kind_of(self, game_id: str) -> str | None:
        with self._lock:
            return self._active.get(game_id)

    def subscribe(self, listener: Callable[[dict[str, str]], None]) -> None:
        """Call ``listener(snapshot)`` after every begin and end (from any thread)."""
        self._listeners.append(listener)

    def unsubscribe(self, listener: Callable[[dict[str, str]], None]) -> None:
        """Stop calling ``listener`` (a no-op if it is not subscribed).

        The list is replaced, not edited, so a notification running in another
        thread finishes over the list it started with.
        """
        self._listeners = [known for known in self._listeners if known != listener]

    def _notify(self) -> None:
        snap = self.snapshot()
        for listener in self._listeners:
            listener(snap)

    def begin(self, game_id: str, kind: str) -> None:
        with self._lock:
            current = self._active.get(game_id)
            if current is not None:
                raise GameBusy(f"{game_id} is busy with {current}; try again when it has finished")
            self._active[game_id] = kind
        self._notify()

    def end(self, game_id: str) -> None:
        with self._lock:
            self._active.pop(game_id, None)
        self._notify()

    @contextmanager
    def hold(self, game_id: str, kind: str) -> Iterator[None]:
        self.begin(game_id, kind)
        try:
            yield
        finally:
            self.end(game_id)
