"""``lanspread demo`` as a newcomer runs it: a real process with three peers."""

from __future__ import annotations

import re

from support.cli import run_cli


def test_the_demo_shows_rates_one_unit_system_and_what_to_try_next() -> None:
    proc = run_cli("demo", env={"COLUMNS": "120"}, timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    # the bars carry the rate the peer measured, never rich's "?" guess
    bar = re.search(r"^download borealis .* 25\.2/25\.2 MB +\d+(\.\d)? [kMG]B/s ", out, re.M)
    assert bar is not None, out
    assert "?/s" not in out and " ? " not in out
    # decimal units everywhere (docs/decisions.md): the same as the console and scan
    assert "MiB" not in out and "GiB" not in out
    split = re.search(r"^verified and installed \(\w+\): (.*)$", out, re.M)
    assert split is not None and re.fullmatch(r"\w+ [\d.]+ MB, \w+ [\d.]+ MB", split[1]), out
    assert "(s)" not in out  # "1 peer", "2 peers": no "peer(s)"
    # and it ends with what to try next, by hand
    tail = out[out.index("What to try next") :]
    assert "lanspread fixtures create ~/lan/a --set alpha" in tail
    assert "--listen 24471 --state-dir ~/lan/b-state --peer 127.0.0.1" in tail
    assert "lanspread download cascade" in tail
