"""Cancellation and progress for blocking work in worker threads."""

from __future__ import annotations

import threading
from collections.abc import Callable

from lanspread_core.archive.protocol import Entry, EntrySink
from lanspread_core.errors import Cancelled


class CancelToken:
    """Set from any thread; checked by workers between blocks."""

    def __init__(self) -> None:
        self._event = threading.Event()

    @property
    def event(self) -> threading.Event:
        """The underlying event, for code that waits on or polls one directly."""
        return self._event

    def cancel(self) -> None:
        self._event.set()

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def check(self) -> None:
        if self._event.is_set():
            raise Cancelled("cancelled")


class WatchedSink:
    """Wraps a sink: checks for cancellation, reports progress, marks file ends.

    :param on_bytes: called with the number of bytes just written.
    :param on_file_end: called after each entry is complete.
    """

    def __init__(
        self,
        inner: EntrySink,
        token: CancelToken | None = None,
        on_bytes: Callable[[int], None] | None = None,
        on_file_end: Callable[[Entry], None] | None = None,
    ) -> None:
        self.inner = inner
        self.token = token
        self.on_bytes = on_bytes
        self.on_file_end = on_file_end

    def begin(self, entry: Entry) -> None:
        if self.token:
            self.token.check()
        self.inner.begin(entry)

    def write(self, data: bytes | memoryview) -> None:
        if self.token:
            self.token.check()
        self.inner.write(data)
        if self.on_bytes:
            self.on_bytes(len(data))

    def end(self, entry: Entry) -> None:
        self.inner.end(entry)
        if self.on_file_end:
            self.on_file_end(entry)
