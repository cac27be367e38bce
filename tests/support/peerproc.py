"""Drive a real ``lanspread peer`` process through its JSONL protocol."""

from __future__ import annotations

import itertools
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from support.cli import LANSPREAD

Record = dict[str, Any]

#: peers on loopback that find each other by the addresses they are given
LOOPBACK = [
    "--listen",
    "127.0.0.1:0",
    "--discovery",
    "static",
    "--ping-interval",
    "0.5",
    "--stale-timeout",
    "3",
]


class PeerProc:
    def __init__(
        self,
        workdir: Path,
        *,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        prefix: Sequence[str] = (),
        games_dir: Path | None = None,
        catalog: Path | None = None,
        bare: bool = False,
    ) -> None:
        """``bare``: no --games-dir or --state-dir; the settings and ``env`` give them."""
        self.workdir = workdir
        self.games_dir = games_dir or workdir / "games"
        self.games_dir.mkdir(parents=True, exist_ok=True)
        where = ["--games-dir", str(self.games_dir), "--state-dir", str(workdir / "state")]
        argv = [
            *prefix,
            str(LANSPREAD),
            "peer",
            *([] if bare else where),
            *(["--catalog", str(catalog)] if catalog else []),
            *args,
        ]
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
        full_env.update(env or {})
        self.stderr_path = workdir / "stderr.log"
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(self.stderr_path, "wb"),  # noqa: SIM115 - owned by the process
            env=full_env,
            start_new_session=True,
        )
        self.records: list[Record] = []
        self._queue: queue.Queue[Record | None] = queue.Queue()
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait_event(lambda e: e.get("event") == "ready", timeout=30)
        self.peer_id: str = self.ready["peer_id"]
        self.control: str = self.ready["control"]

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                record = json.loads(line)
            except ValueError:
                record = {"kind": "garbage", "line": line.decode(errors="replace")}
            with self._cond:
                self.records.append(record)
                self._cond.notify_all()
        with self._cond:
            self.records.append({"kind": "eof"})
            self._cond.notify_all()

    def _wait(self, pred: Callable[[Record], bool], timeout: float, start: int = 0) -> Record:
        deadline = time.monotonic() + timeout
        with self._cond:
            index = start
            while True:
                while index < len(self.records):
                    record = self.records[index]
                    index += 1
                    if pred(record):
                        return record
                    if record.get("kind") == "eof":
                        raise AssertionError(f"peer exited: {self.stderr()[-2000:]}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"no matching record within {timeout}s")
                self._cond.wait(left)

    def wait_event(
        self, pred: Callable[[Record], bool], timeout: float = 10, *, since: int = 0
    ) -> Record:
        return self._wait(lambda r: r.get("kind") == "event" and pred(r), timeout, since)

    def mark(self) -> int:
        with self._cond:
            return len(self.records)

    def send(self, cmd: str, **fields: Any) -> int:
        cid = next(self._ids)
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": cid, "cmd": cmd, **fields}).encode() + b"\n")
        self.proc.stdin.flush()
        return cid

    def call(self, cmd: str, timeout: float = 30, **fields: Any) -> Record:
        """Send a command and return its ``result`` or ``error`` record."""
        cid = self.send(cmd, **fields)
        return self._wait(
            lambda r: r.get("kind") in ("result", "error") and r.get("id") == cid, timeout
        )

    def ok(self, cmd: str, timeout: float = 30, **fields: Any) -> Any:
        record = self.call(cmd, timeout, **fields)
        assert record["kind"] == "result", record
        return record["result"]

    def write_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def shutdown(self, timeout: float = 10) -> float:
        """Ask the peer to stop; return how long it took to exit."""
        start = time.monotonic()
        if self.proc.poll() is None:
            self.send("shutdown")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                raise
        return time.monotonic() - start

    def __enter__(self) -> PeerProc:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            try:
                self.shutdown(5)
            except Exception:
                self.kill()
        if self.proc.stdin:
            self.proc.stdin.close()
        if self.proc.stdout:
            self.proc.stdout.close()


def sources_of(peer: PeerProc, game: str, count: int, timeout: float = 10) -> None:
    """Wait until ``peer`` lists ``count`` peers holding ``game``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        games = {g["id"]: g for g in peer.ok("list-games")["games"]}
        if game in games and len(games[game]["peers"]) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{game} never had {count} sources")
