"""Logging: warnings on stderr, a bounded log file in the state directory.

A running peer writes ``<state>/logs/lanspread.log`` (INFO and up, DEBUG
with ``lanspread -v``), rotated at 1 MiB with five older files kept, so a
peer left running for a whole LAN party never fills the disk. stderr shows
warnings only: ``lanspread peer``'s stdout is a protocol and the console's
screen is a live view, neither has room for chatter. The peer's events
(peers coming and going, operations starting and ending) are logged too,
so the file tells what happened without a front-end attached.

``lanspread logs`` reads the file back; a record's level is the second
field of its first line, and the lines after it (a traceback) belong to it.
"""

from __future__ import annotations

import logging
import logging.handlers
import re
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from lanspread_core.events import (
    Event,
    EventsDropped,
    OpBegin,
    OpCancelled,
    OpFailed,
    OpFinished,
    OpProgress,
    OutboundTransfers,
    PeerJoined,
    PeerLeft,
    RuntimeFailed,
)
from lanspread_core.frontends.present import failure, plural, progress_line
from lanspread_core.library.statedir import StateDir

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle

MAX_BYTES = 1 << 20
BACKUPS = 5
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} (?P<level>[A-Z]+) ")

events_log = logging.getLogger("lanspread_core.events")


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler :func:`setup_logging` installed, so it is set up once."""


def setup_logging(verbose: bool) -> None:
    """The command line's logging: one-line messages on stderr."""
    root = logging.getLogger()
    if not any(isinstance(h, _StderrHandler) for h in root.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("lanspread: %(message)s"))
        root.addHandler(handler)
    for existing in root.handlers:
        if isinstance(existing, _StderrHandler):
            existing.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)


def open_log_file(
    state: StateDir,
    verbose: bool = False,
    max_bytes: int = MAX_BYTES,
    backups: int = BACKUPS,
) -> logging.Handler:
    """Send INFO and up (DEBUG when ``verbose``) to the state directory's log file."""
    state.ensure()  # 0700: created here first when the peer starts
    state.logs.mkdir(exist_ok=True, mode=0o700)
    handler = logging.handlers.RotatingFileHandler(
        state.log_file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"
    )
    level = logging.DEBUG if verbose else logging.INFO
    handler.setLevel(level)
    handler.setFormatter(logging.Formatter(FORMAT))
    if not verbose:  # aioquic logs every connection's setup at INFO
        logging.getLogger("quic").setLevel(logging.WARNING)
    root = logging.getLogger()
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > level:
        root.setLevel(level)
    return handler


def close_log_file(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
    handler.close()


async def log_events(handle: PeerRuntimeHandle) -> None:
    """Write the peer's meaningful events to the log, until the peer stops."""
    ready = handle.ready_event()
    events_log.info(
        "peer %s started: control %s, games dir %s, state dir %s",
        ready.peer_id,
        ready.control,
        ready.games_dir,
        ready.state_dir,
    )
    events = handle.events()
    try:
        async for event in events:
            _log_event(event)
    finally:
        events.close()


def _log_event(event: Event) -> None:
    if isinstance(event, PeerJoined):
        peer = event.peer
        events_log.info(
            "peer joined: %s %s at %s",
            peer.get("peer_id"),
            repr(peer.get("name") or ""),
            peer.get("addr"),
        )
    elif isinstance(event, PeerLeft):
        events_log.info("peer left: %s (%s)", event.peer_id, event.reason)
    elif isinstance(event, RuntimeFailed):
        events_log.error("%s", failure(event))
    elif isinstance(event, EventsDropped):
        events_log.debug("event log fell behind by %s", plural(event.count, "event"))
    elif isinstance(event, OutboundTransfers):
        events_log.info("outbound transfers: %s", event.count)
    elif isinstance(event, OpProgress):
        events_log.debug("%s", progress_line(event))
    elif isinstance(event, OpBegin):
        events_log.info("%s %s started", event.kind, event.game_id)
    elif isinstance(event, OpFinished):
        events_log.info("%s %s finished", event.kind, event.game_id)
    elif isinstance(event, OpCancelled):
        events_log.info("%s", failure(event))
    elif isinstance(event, OpFailed):
        events_log.warning("%s", failure(event))


# ----------------------------------------------------------------- reading


def level_number(name: str) -> int:
    return logging.getLevelNamesMapping()[name.upper()]


def log_files(state: StateDir) -> list[Path]:
    """The log and its rotated predecessors, oldest first."""
    base = state.log_file
    older = [base.with_name(f"{base.name}.{i}") for i in range(BACKUPS, 0, -1)]
    return [p for p in [*older, base] if p.is_file()]


class LevelFilter:
    """Passes the lines of records at or above a level; a record's continuation
    lines (a traceback) go with it, even when they arrive in a later read."""

    def __init__(self, minimum: int) -> None:
        self.minimum = minimum
        self.level = logging.INFO

    def __call__(self, lines: Iterable[str]) -> Iterator[str]:
        names = logging.getLevelNamesMapping()
        for line in lines:
            match = _RECORD.match(line)
            if match:
                self.level = names.get(match["level"], logging.INFO)
            if self.level >= self.minimum:
                yield line


def follow(
    path: Path, out: TextIO, keep: LevelFilter, start: int | None = None, poll: float = 0.25
) -> None:
    """``tail -f`` for the log: new lines as they come, across rotations.

    The file is read from ``start`` (an offset already printed up to) or from
    its end; a file that replaced it by rotation is read from its start.
    """
    handle: TextIO | None = None
    inode = None
    pending = ""
    try:
        while True:
            try:
                st = path.stat()
            except FileNotFoundError:
                st = None
            if st is not None and (handle is None or st.st_ino != inode):
                # the first open starts at the end; a rotated-in file from its start
                new = path.open(encoding="utf-8", errors="replace")
                if handle is None:
                    new.seek(0, 2)
                    if start is not None and start <= new.tell():
                        new.seek(start)
                else:
                    pending += handle.read()
                    handle.close()
                handle, inode = new, st.st_ino
            if handle is not None:
                pending += handle.read()
            lines = pending.splitlines(keepends=True)
            pending = lines.pop() if lines and not lines[-1].endswith("\n") else ""
            wrote = False
            for line in keep(lines):
                out.write(line)
                wrote = True
            if wrote:
                out.flush()
            time.sleep(poll)
    finally:
        if handle is not None:
            handle.close()
