"""``lanspread demo``: three real peers on loopback, in a temporary folder.

It shows the product, not a special code path: three ``lanspread peer``
processes (the JSONL harness) with the fixture sets alpha, bravo and charlie,
finding each other, a multi-source download of the game alpha and bravo
share, a stream-install, and every peer's library; then it cleans up.
"""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from lanspread_core.errors import LanspreadError

if TYPE_CHECKING:
    # rich loads when the demo runs, not with every command that lists this one
    from rich.console import Console

SETS = ("alpha", "bravo", "charlie")
GAME_SIZE = "24MiB"


class DemoFailed(LanspreadError):
    pass


def _lanspread(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "lanspread_core", *map(str, args)]


class DemoPeer:
    """One ``lanspread peer`` process and its JSONL records."""

    def __init__(self, name: str, work: Path, catalog: Path, peers: list[str]) -> None:
        self.name = name
        argv = _lanspread(
            "peer", "--games-dir", work / "games", "--state-dir", work / "state",
            "--catalog", catalog, "--listen", "127.0.0.1:0", "--discovery", "static",
            "--name", name, *[a for p in peers for a in ("--peer", p)],
        )  # fmt: skip
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.results: dict[int, dict[str, Any]] = {}
        self._cond = threading.Condition()
        self._next = 0
        threading.Thread(target=self._read, daemon=True).start()
        ready = self.wait_event("ready", 30)
        self.peer_id: str = ready["peer_id"]
        self.control: str = ready["control"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            record = json.loads(line)
            if record["kind"] == "event":
                self.events.put(record)
            else:
                with self._cond:
                    self.results[record["id"]] = record
                    self._cond.notify_all()

    def wait_event(self, name: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                event = self.events.get(timeout=left)
            except queue.Empty:
                break
            if event["event"] == name:
                return event
        raise DemoFailed(f"{self.name} did not report {name} within {timeout:g}s")

    def send(self, cmd: str, **fields: Any) -> int:
        self._next += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": self._next, "cmd": cmd, **fields}).encode() + b"\n")
        self.proc.stdin.flush()
        return self._next

    def result(self, cid: int, timeout: float = 60) -> dict[str, Any]:
        with self._cond:
            if not self._cond.wait_for(lambda: cid in self.results, timeout):
                raise DemoFailed(f"{self.name} did not answer in {timeout:g}s")
            record = self.results.pop(cid)
        if record["kind"] == "error":
            raise DemoFailed(f"{self.name}: {record['error']}")
        result: dict[str, Any] = record["result"]
        return result

    def call(self, cmd: str, timeout: float = 60, **fields: Any) -> dict[str, Any]:
        return self.result(self.send(cmd, **fields), timeout)

    def stop(self) -> None:
        if self.proc.poll() is None:
            try:
                self.send("shutdown")
                self.proc.wait(5)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()


def _library(console: Console, peer: DemoPeer) -> None:
    from rich.table import Table

    from lanspread_core.frontends.vocabulary import AVAILABILITY, plural

    table = Table(title=f"{peer.name}'s library", title_justify="left")
    for column in ("game", "here", "served by"):
        table.add_column(column)
    for game in peer.call("list-games")["games"]:
        here = AVAILABILITY.get(game["availability"], "-")
        if game["installed"] and game["availability"] == "ready":
            here = "Ready, installed"
        table.add_row(game["id"], here, plural(len(game["peers"]), "peer"))
    console.print(table)


def _watch(console: Console, peer: DemoPeer, op: str, game: str, cid: int) -> dict[str, Any]:
    """Progress bars from the peer's events until the operation has ended: the
    console's own bars, with the rate and sources the peer reports."""
    from lanspread_core.events import OpProgress, parse_event
    from lanspread_core.frontends.present import OperationBars, make_progress

    progress = make_progress(console=console)
    bars = OperationBars(progress)
    with progress:
        bars.begin(op, game)
        while cid not in peer.results:
            try:
                record = peer.events.get(timeout=0.1)
            except queue.Empty:
                continue
            event = parse_event({k: v for k, v in record.items() if k != "kind"})
            if isinstance(event, OpProgress) and event.game_id == game:
                bars.update(event)  # the install step after a download gets its own bar
    return peer.result(cid)


#: What the demo ends with: the same thing on this machine, by hand.
NEXT_STEPS = """\
[bold]What to try next[/bold], with two peers on this machine:
  lanspread fixtures create ~/lan/a --set alpha --catalog ~/lan/catalog.json
  lanspread fixtures create ~/lan/b --set bravo --catalog ~/lan/catalog.json
  lanspread run --games-dir ~/lan/a --catalog ~/lan/catalog.json
in a second terminal, a second peer on its own port and state directory:
  lanspread run --games-dir ~/lan/b --catalog ~/lan/catalog.json \\
      --listen 24471 --state-dir ~/lan/b-state --peer 127.0.0.1
and in a third, ask the first peer for a game only the second has:
  lanspread games
  lanspread download cascade
Between machines, leave out --listen, --state-dir and --peer: peers on one LAN
find each other. More in README.md ("Using it") and docs/user-guide.md."""


def run_demo(console: Console) -> None:
    from lanspread_core.frontends.vocabulary import plural, size

    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="lanspread-demo-"))
    catalog = work / "catalog.json"
    peers: list[DemoPeer] = []
    try:
        console.rule("1. three machines, each with its own fixture games")
        for name in SETS:
            subprocess.run(
                _lanspread("fixtures", "create", work / name / "games", "--set", name,
                           "--size", GAME_SIZE, "--catalog", catalog),
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
            console.print(
                f"{name}: {', '.join(sorted(p.name for p in (work / name / 'games').iterdir()))}"
            )

        console.rule("2. they start and find each other")
        for name in SETS:
            peer = DemoPeer(name, work / name, catalog, [p.control for p in peers])
            peers.append(peer)
            console.print(f"{name} is up: peer {peer.peer_id[:8]} on {peer.control}")
        for peer in peers:
            peer.call("wait-peers", count=2, timeout_ms=10_000, timeout=15)
            console.print(f"{peer.name} sees {plural(len(peer.call('peers')['peers']), 'peer')}")
        alpha, bravo, charlie = peers
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            games = {g["id"]: g for g in charlie.call("list-games")["games"]}
            if len(games.get("borealis", {}).get("peers", [])) >= 2:
                break
            time.sleep(0.1)

        console.rule("3. charlie downloads borealis from alpha and bravo at once")
        result = _watch(
            console,
            charlie,
            "download",
            "borealis",
            charlie.send("download", game_id="borealis", wait=True),
        )
        names = {p.peer_id: p.name for p in peers}
        split = ", ".join(f"{names[k]} {size(v)}" for k, v in result["peers"].items())
        console.print(f"verified and installed ({result['provider']}): {split}")

        console.rule("4. alpha has no room for archives: it stream-installs dunes from charlie")
        result = _watch(
            console,
            alpha,
            "stream-install",
            "dunes",
            alpha.send("stream-install", game_id="dunes", wait=True),
        )
        console.print(f"{plural(result['files'], 'file')} installed from {names[result['peer']]}")

        console.rule("5. the libraries now")
        time.sleep(0.5)
        for peer in peers:
            _library(console, peer)
    finally:
        for peer in peers:
            peer.stop()
        shutil.rmtree(work, ignore_errors=True)
    console.print(f"[green]demo finished in {time.monotonic() - started:.1f}s[/green]")
    console.print()
    console.print(NEXT_STEPS, highlight=False)


@click.command()
def demo() -> None:
    """Run three peers on this machine and show what Lanspread does, then clean up.

    Creates the fixture sets alpha, bravo and charlie in a temporary folder,
    starts a peer for each, downloads the game alpha and bravo share from both
    at once, stream-installs a game, prints every peer's library, and ends
    with what to try next by hand.

    Example: lanspread demo
    """
    from rich.console import Console

    run_demo(Console())
