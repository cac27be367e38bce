"""A second thread that runs calls in order, so reading and writing overlap.

A stream moves bytes through two slow steps (read from a socket or an archive,
write to a socket or a disk); done by one thread they take turns, done by two
they overlap. The queue is bounded, so memory stays at ``depth`` items; an
error in the worker reaches the producer at its next :meth:`submit` or at
:meth:`close`.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

_STOP = object()


class Handoff:
    def __init__(self, name: str, depth: int = 8) -> None:
        self._queue: queue.Queue[Any] = queue.Queue(depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if self._error is not None:
                continue  # drain without working once something failed
            func, args = item
            try:
                func(*args)
            except BaseException as exc:  # handed to the producer
                self._error = exc

    def _raise(self) -> None:
        if self._error is not None:
            raise self._error

    def submit(self, func: Callable[..., Any], *args: Any) -> None:
        self._raise()
        while True:
            try:
                self._queue.put((func, args), timeout=0.2)
                return
            except queue.Full:
                self._raise()

    def close(self) -> None:
        """Wait for every submitted call; raise the first error, if any."""
        self._queue.put(_STOP)
        self._thread.join()
        self._raise()

    def abandon(self) -> None:
        """Stop without raising (the producer failed already)."""
        self._error = self._error or RuntimeError("abandoned")
        self._queue.put(_STOP)
        self._thread.join()

    def __enter__(self) -> Handoff:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.close()
        else:
            self.abandon()
