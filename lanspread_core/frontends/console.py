"""The console front-end: what a person sees after ``lanspread run``.

At start it prints who this peer is and where it keeps things; then, on a
terminal, a live view redrawn in place: the other peers, the library with
each game's state in words, a progress bar per running operation, the
outbound transfer count and the last errors, one sentence each. When stdout
is not a terminal (a pipe, a log file, a service manager) it prints one plain
line per meaningful event instead of redrawing.

The view's model follows the peer's events. Progress comes straight from
``<op>-progress`` events; the library and the peer list are re-queried
(``list-games``, ``peers``) whenever an event says they changed, and after
``events-dropped``, because ``list-games`` is the one place that combines
local state with what other peers hold. Queries are coalesced, so a burst of
events costs one query. The peer stops on Ctrl-C or SIGTERM (handled by the
runner for every front-end); this front-end then returns 0, or 1 when the
runtime failed.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import sys
import time
from typing import Any

import anyio
from rich.cells import cell_len
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from lanspread_core.config import PeerConfig
from lanspread_core.errors import LanspreadError
from lanspread_core.events import (
    CatalogChanged,
    CatalogRefused,
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
    Ready,
    RuntimeFailed,
)
from lanspread_core.frontends.logfile import events_log
from lanspread_core.frontends.present import OperationBars, make_progress, progress_line
from lanspread_core.frontends.vocabulary import (
    availability,
    catalog_news,
    failure,
    plural,
    size,
)
from lanspread_core.library.statedir import StateDir
from lanspread_core.runtime.peer import PeerRuntimeHandle
from lanspread_core.system.netaddr import WILDCARDS, reachable_at

log = logging.getLogger(__name__)

#: Seconds between plain progress lines for one operation.
PLAIN_PROGRESS_EVERY = 2.0
#: Least seconds between two redraws, and between two re-queries.
REDRAW_EVERY = 0.1
REQUERY_EVERY = 0.2
#: The live view re-reads the peer list this often, for "last seen".
PEERS_EVERY = 2.0
MESSAGES = 6

_REQUERY = (LibraryChanged, PeerJoined, PeerLeft, PeerLibrary, EventsDropped, CatalogChanged)


class ConsoleFrontend:
    """``lanspread run``: a live view for people, plain lines when piped."""

    name = "console"

    def __init__(self, config: PeerConfig) -> None:
        self.config = config
        # noted before the peer starts, which creates them
        self.created = {
            "games": not config.games_dir.exists(),
            "state": not config.state_dir.exists(),
        }

    async def run(self, handle: PeerRuntimeHandle) -> int:
        console = Console(highlight=False)
        view = ConsoleView(handle, console, self.config, self.created)
        await view.run()
        return 1 if handle.failure else 0


class ConsoleView:
    def __init__(
        self,
        handle: PeerRuntimeHandle,
        console: Console,
        config: PeerConfig,
        created: dict[str, bool],
    ) -> None:
        self.handle = handle
        self.console = console
        self.config = config
        self.created = created
        self.live_mode = console.is_terminal
        self.ready = handle.ready_event()
        self.peers: dict[str, dict[str, Any]] = {}
        self.peers_at = time.monotonic()
        self.games: list[dict[str, Any]] = []
        self.outbound: int | None = None
        self.uploads: list[dict[str, Any]] = []
        self.progress = make_progress(console=console, auto_refresh=False)
        self.bars = OperationBars(self.progress)
        self.messages: collections.deque[tuple[str, str, str]] = collections.deque(maxlen=MESSAGES)
        self._requery = anyio.Event()
        self._changed = anyio.Event()
        self._shown: dict[str, str] = {}
        self._reconcile = False
        self._ended: set[tuple[str, str]] = set()
        self._idle: set[str] = set()  # games whose operation has ended
        self._last_line: dict[tuple[str, str], float] = {}

    # ------------------------------------------------------------- main loop
    async def run(self) -> None:
        self.print_header()
        events = self.handle.events()
        # the view shows the events itself: their log records stay in the log file
        own = _EventsShownHere()
        stderr_handlers = _stderr_handlers()
        for handler in stderr_handlers:
            handler.addFilter(own)
        try:
            await self.refresh()
            if self.live_mode:
                await self._run_live(events, stderr_handlers)
            else:
                self.plain_games()
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._requerier)
                    async for event in events:
                        self.apply(event)
                    tg.cancel_scope.cancel()
                self.say("peer stopped" if not self.handle.failure else "peer failed")
        finally:
            for handler in stderr_handlers:
                handler.removeFilter(own)
            events.close()

    async def _run_live(
        self,
        events: Any,
        handlers: list[logging.StreamHandler],  # type: ignore[type-arg]
    ) -> None:
        stderr_handlers = [(h, h.stream) for h in handlers]
        with Live(self.render(), console=self.console, auto_refresh=False, transient=False) as live:
            for handler, _ in stderr_handlers:  # log warnings above the view, not through it
                handler.setStream(sys.stderr)
            try:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(self._requerier)
                    tg.start_soon(self._redrawer, live)
                    tg.start_soon(self._peer_poller)
                    async for event in events:
                        self.apply(event)
                    tg.cancel_scope.cancel()
                self.bars.end_all()
                live.update(self.render(stopped=True), refresh=True)
            finally:
                for handler, stream in stderr_handlers:
                    handler.setStream(stream)

    async def _requerier(self) -> None:
        while True:
            await self._requery.wait()
            self._requery = anyio.Event()
            await self.refresh()
            if not self.live_mode:
                self.plain_games()
            await anyio.sleep(REQUERY_EVERY)

    async def _redrawer(self, live: Live) -> None:
        while True:
            with anyio.move_on_after(1):  # ages and rates move even without events
                await self._changed.wait()
            self._changed = anyio.Event()
            live.update(self.render(), refresh=True)
            await anyio.sleep(REDRAW_EVERY)

    async def _peer_poller(self) -> None:
        while True:
            await anyio.sleep(PEERS_EVERY)
            self._requery.set()

    async def refresh(self) -> None:
        """Re-read the library and the peer list from the runtime."""
        try:
            listing = await self.handle.send({"cmd": "list-games"})
            peers = await self.handle.send({"cmd": "peers"})
        except LanspreadError as exc:
            log.debug("console refresh failed: %s", exc)
            return
        except Exception:  # a bug in a query must not end the view (or the peer)
            log.exception("console refresh failed")
            return
        self.games = listing.get("games", [])
        self.peers = {p["peer_id"]: p for p in peers.get("peers", [])}
        if self._reconcile:
            # an end event may have been among the dropped ones: keep running bars only
            self._reconcile = False
            running = {(a.get("kind"), a.get("game_id")) for a in listing.get("active", [])}
            self.bars.keep_only(running)
        self.peers_at = time.monotonic()
        self._changed.set()

    # --------------------------------------------------------------- events
    def apply(self, event: Event) -> None:
        if isinstance(event, _REQUERY):
            self._requery.set()
        if isinstance(event, EventsDropped):
            self._reconcile = True
        elif isinstance(event, PeerJoined):
            peer = event.peer
            self.peers[peer.get("peer_id", "?")] = peer
            self.say(f"peer joined: {_peer_name(peer)} ({peer.get('addr', '?')})")
        elif isinstance(event, PeerLeft):
            peer = self.peers.pop(event.peer_id, {"peer_id": event.peer_id})
            self.say(f"peer left: {_peer_name(peer)} ({event.reason or 'gone'})")
        elif isinstance(event, OutboundTransfers):
            self.outbound = event.count
            self.uploads = event.uploads
            if not self.live_mode:
                self.say(f"outbound transfers: {self.outbound}{uploading(self.uploads)}")
        elif isinstance(event, RuntimeFailed):
            self.error(failure(event))
        elif isinstance(event, CatalogChanged | CatalogRefused):
            self.say(catalog_news(event))
        elif isinstance(event, OpEvent):
            self._apply_op(event)
        self._changed.set()

    def _apply_op(self, event: OpEvent) -> None:
        op, game = str(event.kind), event.game_id
        if isinstance(event, OpBegin):
            self._ended.discard((op, game))
            self._idle.discard(game)
            self.bars.begin(op, game)
            self.say(f"{op} {game}: started")
        elif isinstance(event, OpProgress):
            if game in self._idle:
                return  # a straggler must not bring back a finished bar
            self.bars.update(event)
            if not self.live_mode:
                now = time.monotonic()
                if now - self._last_line.get((op, game), 0) >= PLAIN_PROGRESS_EVERY:
                    self._last_line[(op, game)] = now
                    self.say(progress_line(event))
        else:
            self.bars.end_game(game)
            self._idle.add(game)
            self._last_line = {k: v for k, v in self._last_line.items() if k[1] != game}
            if (op, game) in self._ended:
                return  # e.g. -failed after -all-peers-gone: one end, one sentence
            self._ended.add((op, game))
            if isinstance(event, OpFinished):
                self.note(f"{op} {game}: finished", "green")
            elif isinstance(event, OpCancelled):
                self.note(failure(event), "yellow")
            elif isinstance(event, OpFailed):
                self.error(failure(event))
            self._requery.set()

    def say(self, text: str) -> None:
        """A plain line when piped; in the live view a line in the recent list."""
        if self.live_mode:
            self.note(text, "")
        else:
            print(text, flush=True)

    def note(self, text: str, style: str) -> None:
        if self.live_mode:
            self.messages.append((time.strftime("%H:%M:%S"), text, style))
        else:
            print(text, flush=True)

    def error(self, text: str) -> None:
        if self.live_mode:
            self.messages.append((time.strftime("%H:%M:%S"), text, "bold red"))
        else:
            print(f"error: {text}", flush=True)

    # -------------------------------------------------------------- output
    def print_header(self) -> None:
        for line in header_lines(self.ready, self.config, self.created):
            if self.live_mode:
                self.console.print(Text(line))
            else:
                print(line, flush=True)

    def plain_games(self) -> None:
        """Print each game whose state in words changed since the last print."""
        seen = set()
        for entry in self.games:
            gid = entry["id"]
            seen.add(gid)
            words = _state_words(entry)
            if self._shown.get(gid) != words:
                self._shown[gid] = words
                print(f"game {gid} ({entry.get('name', gid)}): {words}", flush=True)
        for gid in sorted(set(self._shown) - seen):
            del self._shown[gid]
            print(f"game {gid}: no longer here or on any peer", flush=True)

    def render(self, stopped: bool = False) -> RenderableType:
        """The view, cut to the terminal's height.

        What runs now and the library come first; the peer table gets what is
        left (two rows at least), and the recent events only the lines that
        nothing else needs: on an 80×24 terminal the games stay in view.
        Every line is one line (long ones end in an ellipsis), so the count holds.
        """
        operations: list[RenderableType] = []
        if len(self.bars):
            operations = [Text("Operations", style="bold"), self.progress]
        footer = [] if stopped else [Text("Ctrl-C stops this peer.", style="dim")]
        # the summary, the operations, the footer, and one line for the cursor
        left = self.console.size.height - 1 - (1 + len(self.bars) if self.bars else 0)
        left -= len(footer) + 1
        n_peers, n_games = len(self.peers), len(self.games)
        game_rows = _rows(n_games, left - _table_lines(n_peers, min(n_peers, 2)))
        left -= _table_lines(n_games, game_rows)
        peer_rows = _rows(n_peers, left)
        left -= _table_lines(n_peers, peer_rows)
        return Group(
            self._summary(stopped),
            self._peer_table(peer_rows),
            self._game_table(game_rows),
            *operations,
            *self._recent(left - 1),
            *footer,
        )

    def _recent(self, lines: int) -> list[RenderableType]:
        """The newest ``lines`` messages under a title; nothing when none fits."""
        shown = list(self.messages)[-lines:] if lines > 0 else []
        if not shown:
            return []
        recent = Text(no_wrap=True, overflow="ellipsis")
        for stamp, text, style in shown:
            recent.append(f"{stamp} ", style="dim")
            recent.append(text + "\n", style=style)
        recent.rstrip()
        return [Text("Recent", style="bold"), recent]

    def _summary(self, stopped: bool) -> Text:
        serving = sum(1 for g in self.games if g.get("availability") == "ready")
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(f"Peer {self.ready.name or self.ready.peer_id[:8]}", style="bold")
        text.append(f" · {plural(len(self.peers), 'peer')} · serving {serving}")
        if self.outbound is not None:
            text.append(f" · {plural(self.outbound, 'outbound transfer')}")
            text.append(uploading(self.uploads if self.outbound else []))
        if stopped:
            text.append(
                " · failed" if self.handle.failure else " · stopped",
                style="bold red" if self.handle.failure else "bold",
            )
        return text

    def _peer_table(self, rows: int) -> RenderableType:
        if not self.peers:
            return Text("No other peers yet.", style="dim")
        table = Table(title="Peers", title_justify="left", caption_justify="left", expand=False)
        for column in ("Peer", "Address", "Games", "Last seen"):
            table.add_column(column, no_wrap=True, overflow="ellipsis")
        since = time.monotonic() - self.peers_at
        peers = sorted(self.peers.values(), key=_peer_name)
        if len(peers) > rows:
            table.caption = f"… and {plural(len(peers) - rows + 1, 'more peer')}"
            peers = peers[: rows - 1]
        for peer in peers:
            games = peer.get("games") or []
            age = float(peer.get("last_seen_s") or 0) + since
            table.add_row(
                _peer_name(peer),
                str(peer.get("addr", "?")),
                str(len(games) if isinstance(games, list) else games),
                "just now" if age < 1.5 else f"{age:.0f}s ago",
            )
        return table

    def _game_table(self, rows: int) -> RenderableType:
        if not self.games:
            return Text(f"No games in {self.ready.games_dir} or on other peers.", style="dim")
        table = Table(title="Library", title_justify="left", caption_justify="left", expand=False)
        games = self.games
        if len(games) > rows:
            # busy games first: what is happening must stay in view
            games = sorted(games, key=lambda g: not g.get("active"))[: rows - 1]
            games.sort(key=lambda g: str(g["id"]))
            more = len(self.games) - len(games)
            table.caption = f"… and {plural(more, 'more game')}; 'lanspread games' lists all"
        cells: list[tuple[str, ...]] = [
            (
                str(entry["id"]),
                str(entry.get("name") or ""),
                str(entry.get("version") or entry.get("catalog_version") or "-"),
                size(entry.get("size")),
                "yes" if entry.get("installed") else "-",
                availability(entry),
            )
            for entry in games
        ]
        columns = ["Game", "Name", "Version", "Size", "Installed", "State"]
        widths = {
            head: max(cell_len(c) for c in (head, *(row[i] for row in cells)))
            for i, head in enumerate(columns)
        }

        # one line per game, so the view's height adds up: on a narrow terminal
        # the name gives way first (and goes below 8 columns), then the state is cut
        def room(heads: list[str]) -> int:
            return self.console.width - 1 - 3 * len(heads)

        rest = sum(w for h, w in widths.items() if h != "Name")
        if room(columns) - rest < 8:
            columns.remove("Name")
            cells = [(row[0], *row[2:]) for row in cells]
        else:
            widths["Name"] = min(widths["Name"], room(columns) - rest)
        widths["State"] = max(8, room(columns) - sum(widths[h] for h in columns[:-1]))
        for column in columns:
            table.add_column(
                column,
                justify="right" if column == "Size" else "left",
                no_wrap=True,
                overflow="ellipsis",
                max_width=widths[column] if column in ("Name", "State") else None,
            )
        for row in cells:
            words = row[-1]
            style = "green" if words == "Ready" else "cyan" if "Available" in words else ""
            table.add_row(*row[:-1], Text(words, style=style))
        return table


def header_lines(ready: Ready, config: PeerConfig, created: dict[str, bool]) -> list[str]:
    """What ``lanspread run`` prints first: who this peer is, where it keeps
    things, and the address a friend gives ``--peer`` to add it."""
    state = StateDir(config.state_dir)
    name = f" ({ready.name})" if ready.name else ""
    host, _, port = ready.control.rpartition(":")
    host = host.strip("[]")
    addresses = reachable_at(host)
    everywhere = host in WILDCARDS
    lines = [
        f"Lanspread {ready.version} peer {ready.peer_id}{name}",
        f"  games dir     {ready.games_dir}",
        f"  state dir     {ready.state_dir}{' (created)' if created['state'] else ''}",
        f"  ports         UDP {port} (peers) and TCP {ready.data_port} (downloads)"
        + (", on every address" if everywhere else f", on {host}"),
        f"  this machine  {', '.join(addresses) or 'no LAN address found'}",
        f"  local control {state.control_socket} (for 'lanspread status', 'install' ...)",
    ]
    if created["games"]:
        lines.append(
            f"Created an empty games folder, {ready.games_dir}: put game folders in it,"
            " or give --games-dir."
        )
    reachable = [a for a in addresses if not ipaddress.ip_address(a).is_loopback]
    if reachable:
        lines.append(f"Friends can add you with --peer {_addr(reachable[0])}:{port}")
    else:
        lines.append(
            "Only this machine can reach this peer"
            + (f" (it listens on {host})." if not everywhere else " (no LAN address found).")
        )
    return lines


def _addr(host: str) -> str:
    return f"[{host}]" if ":" in host else host


#: Lines a table costs besides its rows: title, top border, header, rule, bottom border.
TABLE_LINES = 5


def _table_lines(count: int, rows: int) -> int:
    """Lines a table of ``count`` items cut to ``rows`` takes (one line when empty)."""
    return TABLE_LINES + rows if count else 1


def _rows(count: int, room: int) -> int:
    """Rows for a table of ``count`` items in ``room`` lines: all that fit, two at least."""
    return min(count, max(2, room - TABLE_LINES))


def _state_words(entry: dict[str, Any]) -> str:
    words = availability(entry)
    if entry.get("installed") and entry.get("availability") != "local_only":
        return f"{words}, installed"
    return words


def _peer_name(peer: dict[str, Any]) -> str:
    return str(peer.get("name") or str(peer.get("peer_id") or "?")[:8])


class _EventsShownHere(logging.Filter):
    """Keeps the peer's event records (a failed download's warning) off stderr
    while the console shows those events: each is said once, in the view."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name != events_log.name


def _stderr_handlers() -> list[logging.StreamHandler]:  # type: ignore[type-arg]
    return [
        h
        for h in logging.getLogger().handlers
        if isinstance(h, logging.StreamHandler)
        and not isinstance(h, logging.FileHandler)
        and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)
    ]


def uploading(uploads: list[dict[str, Any]]) -> str:
    """`` (aurora to bob 11.2 MB/s, ...)`` for the uploads an event listed; or nothing."""
    if not uploads:
        return ""
    parts = [
        f"{u.get('game_id', '?')} to {u.get('name') or str(u.get('peer_id', '?'))[:8]}"
        f" {size(int(u.get('rate') or 0))}/s"
        for u in uploads
    ]
    return " (" + ", ".join(parts) + ")"
