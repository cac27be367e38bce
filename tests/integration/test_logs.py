"""A running peer's log file, read back by 'lanspread logs' and followed with --follow."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

from lanspread_core.library.statedir import StateDir
from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD, invoke
from support.peerproc import PeerProc

FAST = ["--ping-interval", "0.5", "--listen", "127.0.0.1:0", "--discovery", "static"]
STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}"


def test_a_peer_logs_to_its_state_dir_and_logs_filters_by_level(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "a" / "games", "alpha", catalog=catalog)
    create_set(tmp_path / "b" / "games", "bravo", catalog=catalog)
    with PeerProc(tmp_path / "a", args=FAST, catalog=catalog) as a:
        with PeerProc(tmp_path / "b", args=[*FAST, "--peer", a.control], catalog=catalog) as b:
            a.ok("wait-peers", count=1)
            failed = a.call("uninstall", game_id="aurora", wait=True)
            assert failed["kind"] == "error"
            b_id = b.peer_id
        a.wait_event(lambda e: e["event"] == "peer-left")
    log = tmp_path / "a" / "state" / "logs" / "lanspread.log"
    text = log.read_text()
    assert re.search(rf"^{STAMP} INFO lanspread_core.events: peer {a.peer_id} started", text, re.M)
    assert f"peer joined: {b_id}" in text
    assert f"peer left: {b_id} (goodbye)" in text
    assert re.search(
        r"WARNING lanspread_core.events: Uninstall of aurora failed: .*\.$", text, re.M
    )
    assert " DEBUG " not in text, "debug only with -v"
    assert " INFO quic:" not in text, "aioquic's per-connection chatter only with -v"
    # the JSONL stdout stayed clean and stderr shows warnings only
    assert "INFO" not in a.stderr() and "peer joined" not in a.stderr()

    everything = invoke("logs", "--state-dir", tmp_path / "a" / "state")
    assert everything.returncode == 0
    assert everything.stdout == text
    warnings = invoke("logs", "--level", "warning", "--state-dir", tmp_path / "a" / "state")
    assert warnings.returncode == 0
    lines = warnings.stdout.splitlines()
    assert lines and all(" WARNING " in ln or " ERROR " in ln for ln in lines)
    assert any("Uninstall of aurora failed" in ln for ln in lines)
    last = invoke("logs", "-n", "1", "--state-dir", tmp_path / "a" / "state")
    assert last.stdout == text.splitlines(keepends=True)[-1]


def test_logs_follow_prints_new_records_across_a_rotation(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    state.logs.mkdir(parents=True)
    log = state.log_file
    log.write_text("2025-01-01 10:00:00,000 WARNING x: old\n")
    proc = subprocess.Popen(
        [str(LANSPREAD), "logs", "--follow", "--level", "warning", "--state-dir", str(state.path)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()

    def next_line() -> str:
        return lines.get(timeout=10)

    try:
        assert next_line() == "2025-01-01 10:00:00,000 WARNING x: old\n"
        with log.open("a") as f:
            f.write("2025-01-01 10:00:01,000 INFO x: hidden\n")
            f.write("2025-01-01 10:00:02,000 ERROR x: shown\nTraceback line\n")
        assert next_line() == "2025-01-01 10:00:02,000 ERROR x: shown\n"
        assert next_line() == "Traceback line\n"
        os.replace(log, log.with_name("lanspread.log.1"))
        log.write_text("2025-01-01 10:00:03,000 WARNING x: after rotation\n")
        assert next_line() == "2025-01-01 10:00:03,000 WARNING x: after rotation\n"
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(10) == 0
        assert lines.empty()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
