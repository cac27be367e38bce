"""How lanspread words things for people: states, sizes, failures, progress bars.

The console front-end and the client commands show the same games and the
same operations, so the words and the progress columns live here once.
"""

from __future__ import annotations

from typing import Any

from rich.filesize import decimal
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
)
from rich.text import Text

from lanspread_core.events import (
    OpAllPeersGone,
    OpCancelled,
    OpFailed,
    OpKind,
    OpProgress,
    RuntimeFailed,
)

#: ``availability`` values of ``list-games`` in words (docs/protocol.md).
AVAILABILITY = {
    "ready": "Ready",
    "downloading": "Downloading",
    "local_only": "Installed — not shareable",
    "busy": "Busy",
    "outdated": "Outdated",
    "unlisted": "Not in catalog",
    "absent": "Not downloaded",
}

#: A running operation's kind as a participle ("Busy — installing").
DOING = {
    OpKind.INSTALL: "installing",
    OpKind.UPDATE: "updating",
    OpKind.UNINSTALL: "uninstalling",
    OpKind.REMOVE_DOWNLOAD: "removing the download",
    OpKind.DOWNLOAD: "downloading",
    OpKind.STREAM_INSTALL: "stream-installing",
}


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def size(n: int | None) -> str:
    return "-" if n is None else decimal(n)


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def holders(entry: dict[str, Any]) -> int:
    peers = entry.get("peers") or []
    return len(peers) if isinstance(peers, list) else int(peers)


def availability(entry: dict[str, Any]) -> str:
    """One ``list-games`` entry's state in words, as a person should read it."""
    active = entry.get("active")
    if active:
        return "Downloading" if active == "download" else f"Busy — {DOING.get(active, active)}"
    state = entry.get("availability")
    n = holders(entry)
    if state == "remote":
        return f"Available from {plural(n, 'peer')}"
    words = AVAILABILITY.get(str(state), str(state))
    if state in ("absent", "outdated") and n:
        words += f" — available from {plural(n, 'peer')}"
    return words


def op_name(kind: str) -> str:
    """``remove-download`` -> ``Remove download``."""
    return kind.replace("-", " ").capitalize()


def sentence(text: str) -> str:
    text = " ".join(str(text).split())
    return text if text.endswith((".", "!", "?")) else text + "."


def failure(event: OpFailed | RuntimeFailed) -> str:
    """An operation's failure (``failed``, ``cancelled``, ``all-peers-gone``) or
    the peer's own (``runtime-failed``) as one sentence."""
    if isinstance(event, RuntimeFailed):
        return sentence(f"The peer stopped: {event.error or 'a required service died'}")
    op, game, error = op_name(event.kind), event.game_id or "?", event.error
    if isinstance(event, OpCancelled):
        return sentence(f"{op} of {game} was cancelled")
    if isinstance(event, OpAllPeersGone):
        error = error or "every peer that had it left"
    return sentence(f"{op} of {game} failed: {error or 'no reason given'}")


def progress_peers(event: OpProgress) -> int:
    """How many peers a progress event says it draws from, when it says so."""
    return event.active_peers


class RateColumn(ProgressColumn):
    """The rate the peer reported (downloads do), else rich's own estimate."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if rate is None:
            rate = task.speed
        if rate is None:
            return Text("?/s", style="progress.data.speed")
        return Text(f"{decimal(int(rate))}/s", style="progress.data.speed")


class EtaColumn(ProgressColumn):
    """Time left: the peer's ``eta`` when it sent one, else rich's estimate."""

    max_refresh = 0.5

    def render(self, task: Task) -> Text:
        eta = task.fields.get("eta")
        if eta is None:
            eta = task.time_remaining
        return Text(f"ETA {duration(eta)}", style="progress.remaining")


class PeersColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        n = task.fields.get("peers")
        return Text("" if n is None else f"from {plural(n, 'peer')}", style="cyan")


def make_progress(**kwargs: Any) -> Progress:
    """A progress display with one bar per operation: bytes, rate, ETA, source peers."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(bar_width=None),
        TaskProgressColumn(),
        DownloadColumn(),
        RateColumn(),
        EtaColumn(),
        PeersColumn(),
        **kwargs,
    )


class OperationBars:
    """Bars keyed by (operation, game) fed from ``<op>-begin/progress`` events."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._tasks: dict[tuple[str, str], Any] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def begin(self, op: str, game_id: str) -> None:
        key = (op, game_id)
        if key not in self._tasks:
            self._tasks[key] = self.progress.add_task(
                f"{op} {game_id}", total=None, rate=None, eta=None, peers=None
            )

    def update(self, event: OpProgress) -> None:
        op, game_id = str(event.kind), event.game_id
        self.begin(op, game_id)
        self.progress.update(
            self._tasks[(op, game_id)],
            completed=event.done,
            total=event.total or None,
            rate=event.rate,
            eta=event.eta,
            peers=progress_peers(event),
        )

    def end(self, op: str, game_id: str) -> None:
        task = self._tasks.pop((op, game_id), None)
        if task is not None:
            self.progress.remove_task(task)

    def end_game(self, game_id: str) -> None:
        """End every bar of ``game_id``: one operation per game runs at a time, and
        a download's own install step reports ``install-progress`` with no end."""
        for op, gid in list(self._tasks):
            if gid == game_id:
                self.end(op, gid)

    def keep_only(self, running: set[tuple[str, str]]) -> None:
        for key in list(self._tasks):
            if key not in running:
                self.end(*key)

    def end_all(self) -> None:
        for op, game_id in list(self._tasks):
            self.end(op, game_id)


def progress_line(event: OpProgress) -> str:
    """A progress event as a plain line, for logs and non-terminal output."""
    done, total = event.done, event.total
    parts = [f"{event.kind} {event.game_id}:"]
    if total:
        parts.append(f"{100 * done / total:.0f}% ({size(done)} of {size(total)})")
    else:
        parts.append(size(done))
    parts.append(f"{size(event.rate)}/s")
    if event.eta is not None:
        parts.append(f"ETA {duration(event.eta)}")
    parts.append(f"from {plural(progress_peers(event), 'peer')}")
    return " ".join(parts)
