"""Record a JSONL session of two real peers, byte for byte (``docs/protocol.md``).

The recording in ``tests/data/session/`` is the contract the JSONL and
control-socket output must keep: ``tests/integration/test_session_contract.py``
checks that every recorded record serialises back to the same bytes through
the typed events, and that a live session today produces the same kinds of
records with the same fields in the same order.

Run it again only when the protocol changes on purpose::

    .venv/bin/python tests/support/session_recorder.py tests/data/session
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

LANSPREAD = Path(sys.executable).with_name("lanspread")
LOOPBACK = ["--listen", "127.0.0.1:0", "--discovery", "static", "--ping-interval", "0.5"]
MiB = 1 << 20

#: the commands the session sends to the downloading peer, in order
SCRIPT: list[dict[str, Any] | bytes] = [
    {"cmd": "status"},
    {"cmd": "peers"},
    {"cmd": "list-games"},
    {"cmd": "get-game", "game_id": "aurora"},
    {"cmd": "download", "game_id": "aurora", "wait": True},
    {"cmd": "uninstall", "game_id": "aurora", "wait": True},
    {"cmd": "install", "game_id": "aurora", "wait": True},
    {"cmd": "update", "game_id": "aurora", "wait": True},
    {"cmd": "uninstall", "game_id": "aurora", "wait": True},
    {"cmd": "remove-download", "game_id": "aurora", "wait": True},
    {"cmd": "stream-install", "game_id": "aurora", "wait": True},
    {"cmd": "stream-install", "game_id": "aurora", "wait": True},
    {"cmd": "remove-download", "game_id": "aurora", "wait": True},
    {"cmd": "uninstall", "game_id": "aurora", "wait": True},
    {"cmd": "download", "game_id": "borealis", "install": False, "wait": True},
    {"cmd": "install", "game_id": "nosuch"},
    {"cmd": "download", "game_id": "nosuch", "wait": True},
    {"cmd": "cancel", "game_id": "aurora"},
    {"cmd": "bogus"},
    {"cmd": "install"},
    {"cmd": "fetch"},
    {"cmd": "wait-peers", "count": 1, "timeout_ms": 1000},
    {"cmd": "connect", "addr": "not an address"},
    b"not json",
    b"[1, 2]",
]
#: sent after the seed left: a download with no source fails with its own events
AFTER_SEED_LEFT: list[dict[str, Any] | bytes] = [
    {"cmd": "remove-download", "game_id": "borealis", "wait": True},
    {"cmd": "download", "game_id": "borealis", "wait": True},
    {"cmd": "list-games"},
]


class Peer:
    """A ``lanspread peer`` process whose stdout lines are kept as raw bytes."""

    def __init__(self, workdir: Path, catalog: Path, args: list[str]) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
        self.lines: list[bytes] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [
                str(LANSPREAD),
                "peer",
                "--games-dir",
                str(workdir / "games"),
                "--state-dir",
                str(workdir / "state"),
                "--catalog",
                str(catalog),
                *LOOPBACK,
                *args,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )
        threading.Thread(target=self._read, daemon=True).start()
        self.ready = self.wait(lambda r: r.get("event") == "ready")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self.lines.append(line)
                self._cond.notify_all()

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                for line in self.lines[seen:]:
                    record = json.loads(line)
                    if pred(record):
                        return record
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("no such record")
                self._cond.wait(left)

    def send(self, cid: int, cmd: dict[str, Any] | bytes) -> dict[str, Any]:
        assert self.proc.stdin is not None
        if isinstance(cmd, bytes):  # a line that is not a command: answered with id null
            self.proc.stdin.write(cmd + b"\n")
            self.proc.stdin.flush()
            return self.wait(lambda r: r.get("kind") == "error" and r.get("id") is None)
        self.proc.stdin.write(json.dumps({"id": cid, **cmd}).encode() + b"\n")
        self.proc.stdin.flush()
        return self.wait(lambda r: r.get("kind") in ("result", "error") and r.get("id") == cid)

    def stop(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=20)


def record(out: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        catalog = work / "catalog.json"
        subprocess.run(
            [
                str(LANSPREAD),
                *("fixtures", "create", str(work / "a" / "games"), "--set", "alpha"),
                *("--catalog", str(catalog), "--size", str(4 * MiB)),
            ],
            check=True,
            capture_output=True,
        )
        seed = Peer(work / "a", catalog, ["--name", "seed"])
        guest = Peer(work / "c", catalog, ["--name", "guest", "--peer", seed.ready["control"]])
        guest.wait(lambda r: r.get("event") == "peer-library")
        for cid, cmd in enumerate(SCRIPT, start=1):
            guest.send(cid, cmd)
        seed.stop()
        guest.wait(lambda r: r.get("event") == "peer-left")
        for cid, cmd in enumerate(AFTER_SEED_LEFT, start=len(SCRIPT) + 1):
            guest.send(cid, cmd)
        guest.stop()
        out.mkdir(parents=True, exist_ok=True)
        (out / "guest.jsonl").write_bytes(b"".join(guest.lines))
        (out / "seed.jsonl").write_bytes(b"".join(seed.lines))


if __name__ == "__main__":
    record(Path(sys.argv[1]))
