"""The peer's log file, its rotation, and 'lanspread logs' (also --unpack, --follow)."""

from __future__ import annotations

import logging
import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

from lanspread_core.frontends.logfile import BACKUPS, MAX_BYTES, close_log_file, open_log_file
from lanspread_core.install.unpacklog import UnpackLog
from lanspread_core.library.statedir import StateDir
from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD, run_cli
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

    everything = run_cli("logs", "--state-dir", tmp_path / "a" / "state")
    assert everything.returncode == 0
    assert everything.stdout == text
    warnings = run_cli("logs", "--level", "warning", "--state-dir", tmp_path / "a" / "state")
    assert warnings.returncode == 0
    lines = warnings.stdout.splitlines()
    assert lines and all(" WARNING " in ln or " ERROR " in ln for ln in lines)
    assert any("Uninstall of aurora failed" in ln for ln in lines)
    last = run_cli("logs", "-n", "1", "--state-dir", tmp_path / "a" / "state")
    assert last.stdout == text.splitlines(keepends=True)[-1]


def test_the_log_rotates_at_its_size_cap(tmp_path: Path) -> None:
    assert (MAX_BYTES, BACKUPS) == (1 << 20, 5)
    state = StateDir(tmp_path / "state")
    root = logging.getLogger()
    level = root.level
    handler = open_log_file(state, max_bytes=4096, backups=3)
    try:
        log = logging.getLogger("lanspread_core.test")
        for i in range(400):
            log.info("record %04d %s", i, "x" * 40)
    finally:
        close_log_file(handler)
        root.setLevel(level)
    files = sorted(state.logs.iterdir())
    assert [f.name for f in files] == [
        "lanspread.log",
        "lanspread.log.1",
        "lanspread.log.2",
        "lanspread.log.3",
    ]
    assert all(f.stat().st_size <= 4096 for f in files)
    # 'lanspread logs' prints what is kept, oldest first, ending with the newest record
    out = run_cli("logs", "--state-dir", state.path).stdout
    numbers = [int(n) for n in re.findall(r"record (\d{4})", out)]
    assert numbers == sorted(numbers) and numbers[-1] == 399 and numbers[0] > 0


def test_logs_unpack_shows_clean_unpack_logs(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    with UnpackLog(state.unpack_logs, "aurora", "install") as ulog:
        ulog.line(
            "\x1b[1mextracting\x1b[0m level01.map   10%\r"
            "\x1b[1mextracting\x1b[0m level01.map   55%\r"
            "\x1b[1mextracting\x1b[0m level01.map  100%"
        )
    # a file written raw (by an older version) is cleaned when shown
    state.unpack_logs.mkdir(parents=True, exist_ok=True)
    (state.unpack_logs / "20000101-000000-000001-dunes-install.log").write_text(
        "\x1b]0;title\x07unrar 6.2\n\x1b[32mOK\x1b[0m  bin/dunes\b\b\b\b\bDUNES\n"
    )
    proc = run_cli("logs", "--unpack", "--state-dir", state.path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout and "\b" not in proc.stdout
    assert "\nextracting level01.map  100%\n" in proc.stdout
    assert "OK  bin/DUNES" in proc.stdout
    assert re.search(r"^==> \d{8}-\d{6}-\d{6}-aurora-install\.log <==$", proc.stdout, re.M)
    only = run_cli("logs", "--unpack", "--game", "dunes", "--state-dir", state.path).stdout
    assert "dunes-install" in only and "aurora" not in only
    none = run_cli("logs", "--unpack", "--game", "ember", "--state-dir", state.path)
    assert none.returncode == 0 and none.stderr.startswith("lanspread: no unpack logs for ember")


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
