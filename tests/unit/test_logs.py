"""The log file's rotation, and 'lanspread logs' reading it and the unpack logs back."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from lanspread_core.frontends.logfile import BACKUPS, MAX_BYTES, close_log_file, open_log_file
from lanspread_core.install.unpacklog import UnpackLog
from lanspread_core.library.statedir import StateDir
from support.cli import invoke


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
    out = invoke("logs", "--state-dir", state.path).stdout
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
    proc = invoke("logs", "--unpack", "--state-dir", state.path)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\r" not in proc.stdout and "\b" not in proc.stdout
    assert "\nextracting level01.map  100%\n" in proc.stdout
    assert "OK  bin/DUNES" in proc.stdout
    assert re.search(r"^==> \d{8}-\d{6}-\d{6}-aurora-install\.log <==$", proc.stdout, re.M)
    only = invoke("logs", "--unpack", "--game", "dunes", "--state-dir", state.path).stdout
    assert "dunes-install" in only and "aurora" not in only
    none = invoke("logs", "--unpack", "--game", "ember", "--state-dir", state.path)
    assert none.returncode == 0 and none.stderr.startswith("lanspread: no unpack logs for ember")


def test_unpack_logs_keep_the_last_20_newest_first(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    # 25 runs, most of them in the same second: the names alone must order them
    games = [f"g{i:02d}" for i in range(25)]
    for game in games:
        with UnpackLog(state.unpack_logs, game, "install") as ulog:
            ulog.line(f"unpacking {game}")
    kept = sorted(p.name for p in state.unpack_logs.iterdir())
    assert len(kept) == 20
    assert [name.split("-")[3] for name in kept] == games[5:]
    out = invoke("logs", "--unpack", "--state-dir", state.path).stdout
    shown = re.findall(r"^==> \d{8}-\d{6}-\d{6}-(g\d\d)-install\.log <==$", out, re.M)
    assert shown == games[:4:-1]  # the newest first, down to the oldest kept


def test_logs_unpack_game_matches_whole_ids(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    for game, op in [("quake", "install"), ("quake-2", "stream-install"), ("quake", "update")]:
        with UnpackLog(state.unpack_logs, game, op):
            pass
    out = invoke("logs", "--unpack", "--game", "quake", "--state-dir", state.path).stdout
    assert re.findall(r"^==> \S+-(quake\S*)\.log <==$", out, re.M) == [
        "quake-update",
        "quake-install",
    ]
    out = invoke("logs", "--unpack", "--game", "quake-2", "--state-dir", state.path).stdout
    assert re.findall(r"^==> \S+-(quake\S*)\.log <==$", out, re.M) == ["quake-2-stream-install"]
