"""The console's live view on a small terminal, and one unit system for sizes."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from lanspread_core.config import PeerConfig
from lanspread_core.events import Ready
from lanspread_core.frontends import vocabulary
from lanspread_core.frontends.console import ConsoleView
from lanspread_fixture.gamesets import create_set
from support.cli import invoke

GAMES = ["aurora", "borealis", "cascade", "dunes", "ember", "fjord", "glacier", "harbor",
         "island", "jungle", "kelp", "lagoon"]  # fmt: skip
STATES = ["ready", "remote", "local_only", "absent", "outdated"]


class Handle:
    """What the view reads of a running peer before it runs: its ready event."""

    failure = None

    def ready_event(self) -> Ready:
        return Ready("a" * 32, "alice", "0", "0.0.0.0:24470", [], 24470, "/g", "/s")


def render(games: int, peers: int, messages: int, height: int = 24, width: int = 80) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, height=height, force_terminal=True, color_system=None)
    config = PeerConfig(Path("/g"), Path("/s"))
    view = ConsoleView(Handle(), console, config, {"games": False, "state": False})  # type: ignore[arg-type]
    view.games = [
        {"id": gid, "name": f"{gid.title()} Assault Deluxe Edition", "version": "2.1.0",
         "size": 262_000_000, "installed": i % 2 == 0, "availability": STATES[i % 5],
         "peers": ["x"] * (i % 3)}
        for i, gid in enumerate(GAMES[:games])
    ]  # fmt: skip
    view.peers = {
        str(i) * 32: {"peer_id": str(i) * 32, "name": f"peer{i}", "addr": f"10.0.0.{i}:24470",
                      "games": ["aurora"], "last_seen_s": 0}
        for i in range(peers)
    }  # fmt: skip
    for i in range(messages):
        view.messages.append(("12:00:00", f"download borealis: news number {i}" + " ." * 40, ""))
    console.print(view.render())
    return out.getvalue()


def test_on_80_by_24_the_library_comes_before_recent_events() -> None:
    screen = render(games=5, peers=2, messages=6)
    lines = screen.splitlines()
    assert len(lines) < 24, screen
    for gid in GAMES[:5]:
        assert any(line.startswith(f"│ {gid} ") for line in lines), screen
    assert all(any(f"peer{i}" in line for line in lines) for i in range(2))
    # the recent events get what is left, newest first to stay
    assert "news number 5" in screen and "news number 0" not in screen
    assert all(len(line) <= 80 for line in lines)


def test_a_long_library_pushes_recent_events_out_not_the_games() -> None:
    screen = render(games=12, peers=4, messages=6)
    lines = screen.splitlines()
    assert len(lines) < 24, screen
    shown = [gid for gid in GAMES if any(line.startswith(f"│ {gid} ") for line in lines)]
    assert len(shown) >= 8, screen
    assert f"… and {12 - len(shown)} more games" in screen
    assert "Recent" not in screen


def test_a_row_is_one_line_and_a_game_id_is_never_cut() -> None:
    screen = render(games=5, peers=0, messages=0, width=80)
    rows = [line for line in screen.splitlines() if line.startswith("│ ")]
    assert len(rows) == 5 and all(len(row) <= 80 for row in rows)
    assert [row.split("│")[1].strip() for row in rows] == GAMES[:5]
    wide = render(games=5, peers=0, messages=0, width=120)
    assert "Aurora Assault Deluxe Edition" in wide  # room enough: the name is shown


def test_sizes_are_decimal_everywhere(tmp_path: Path) -> None:
    assert vocabulary.size(262_573) == "262.6 kB"
    assert vocabulary.paused_words(1_200_000_000, 2_300_000_000) == (
        "Paused — 52 %, 1.2 GB of 2.3 GB"
    )
    create_set(tmp_path / "games", "alpha")
    proc = invoke("scan", "--games-dir", tmp_path / "games", "--state-dir", tmp_path / "s")
    assert proc.returncode == 0, proc.stderr
    aurora = next(line for line in proc.stdout.splitlines() if line.startswith("aurora"))
    assert " kB " in aurora or " MB " in aurora, aurora
    assert "," not in aurora.split()[2]  # no raw byte count


def test_a_bar_shows_the_peers_rate_and_no_question_mark_before_it() -> None:
    from lanspread_core.events import OpKind, OpProgress
    from lanspread_core.frontends.present import OperationBars, make_progress

    out = io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    progress = make_progress(console=console, auto_refresh=False)
    bars = OperationBars(progress)
    bars.begin("download", "borealis")
    console.print(progress.get_renderable())
    assert "?/s" not in out.getvalue()
    bars.update(OpProgress(OpKind.DOWNLOAD, "borealis", 5_000_000, 25_000_000, 14_700_000, 1.4, 2))
    console.print(progress.get_renderable())
    last = out.getvalue().splitlines()[-1]
    assert "5.0/25.0 MB" in last and "14.7 MB/s" in last and "from 2 peers" in last
