"""How lanspread shows things for people on a terminal: progress bars and lines.

The words themselves (states, sizes, failures) live in
:mod:`lanspread_core.frontends.vocabulary`, shared with every front-end; this
module adds what needs rich, and re-exports the words for its callers.
"""

from __future__ import annotations

from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
)
from rich.table import Column
from rich.text import Text

from lanspread_core.events import OpKind, OpProgress
from lanspread_core.frontends.vocabulary import (
    AVAILABILITY,
    DOING,
    availability,
    duration,
    failure,
    holders,
    op_name,
    plural,
    sentence,
    size,
)

__all__ = [
    "AVAILABILITY",
    "DOING",
    "OperationBars",
    "availability",
    "duration",
    "failure",
    "holders",
    "make_progress",
    "op_name",
    "plural",
    "progress_line",
    "sentence",
    "size",
]


#: Operations whose bytes come from peers (the others read this machine's disk).
_FROM_PEERS = frozenset({OpKind.DOWNLOAD, OpKind.STREAM_INSTALL})


def progress_peers(event: OpProgress) -> int:
    """How many peers a progress event says it draws from, when it says so."""
    return event.active_peers


class RateColumn(ProgressColumn):
    """The rate the peer reported (downloads do), else rich's own estimate."""

    def render(self, task: Task) -> Text:
        rate = task.fields.get("rate")
        if rate is None:
            rate = task.speed
        if rate is None:  # nothing measured yet: say nothing rather than "?"
            return Text("")
        return Text(f"{size(int(rate))}/s", style="progress.data.speed")


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
        named = task.fields.get("sources")
        n = task.fields.get("peers")
        words = f"from {named}" if named else "" if n is None else f"from {plural(n, 'peer')}"
        return Text(words, style="cyan", no_wrap=True, overflow="ellipsis")


def named_sources(event: OpProgress) -> str:
    """``seed 8.1 MB/s, bob 3.0 MB/s (partial)``: each source of a download by name."""
    if not event.sources:
        return ""
    return ", ".join(
        f"{s.get('name') or str(s.get('peer_id', '?'))[:8]} {size(int(s.get('rate') or 0))}/s"
        + (" (partial)" if s.get("partial") else "")
        for s in event.sources
    )


def make_progress(**kwargs: Any) -> Progress:
    """A progress display with one bar per operation: bytes, rate, ETA, source peers.

    Each bar stays one line: on a narrow terminal the bar shrinks and the
    source names end in an ellipsis, instead of numbers breaking over lines.
    """

    def fixed() -> Column:
        return Column(no_wrap=True)

    return Progress(
        TextColumn("{task.description}", table_column=fixed()),
        BarColumn(bar_width=None),
        TaskProgressColumn(table_column=fixed()),
        DownloadColumn(table_column=fixed()),
        RateColumn(table_column=fixed()),
        EtaColumn(table_column=fixed()),
        # the one column that gives way: its text is cut, never wrapped
        PeersColumn(table_column=Column(min_width=8)),
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
                f"{op} {game_id}", total=None, rate=None, eta=None, peers=None, sources=""
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
            # an install reads local archives: "from 0 peers" would only confuse
            peers=progress_peers(event) if event.kind in _FROM_PEERS else None,
            sources=named_sources(event),
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
    named = named_sources(event)
    parts.append(f"from {named}" if named else f"from {plural(progress_peers(event), 'peer')}")
    return " ".join(parts)
