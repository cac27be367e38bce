"""One vocabulary for every front-end: the same words in the console, the CLI and the web page."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from lanspread_core.frontends import present, vocabulary
from lanspread_fixture.gamesets import create_set
from support.cli import run_cli


def entry(availability: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "availability": availability,
        "downloaded": availability in ("ready", "outdated", "unlisted"),
        "installed": False,
        "peers": [],
        "active": None,
    }
    return {**base, **fields}


def test_a_stream_installed_game_is_installed_not_shareable_everywhere() -> None:
    game = entry("local_only", installed=True)
    assert vocabulary.availability(game) == "Installed, not shareable"
    assert vocabulary.sharing(game) == "Installed, not shareable"
    # the terminal front-ends take their words from the same place
    assert present.availability is vocabulary.availability
    assert present.AVAILABILITY is vocabulary.AVAILABILITY


def test_the_vocabulary_loads_without_rich() -> None:
    code = "import sys, lanspread_core.frontends.vocabulary; print('rich' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_scan_says_not_in_catalog_for_an_unlisted_game(tmp_path: Path) -> None:
    games = tmp_path / "games"
    games.mkdir()
    create_set(games, "alpha", size=4096, fmt="fixture")  # no catalog: every game is unlisted
    proc = run_cli("scan", "--games-dir", games, "--state-dir", tmp_path / "state")
    assert proc.returncode == 0, proc.stderr
    assert "Not in catalog" in proc.stdout
    assert "unlisted" not in proc.stdout


@pytest.mark.parametrize(
    ("game", "expected"),
    [
        (entry("remote", downloaded=False, peers=["p1"]), ["download", "stream-install"]),
        (entry("ready"), ["install", "remove-download"]),
        (entry("ready", installed=True), ["update", "uninstall"]),
        (
            entry("local_only", downloaded=False, installed=True, peers=["p1"]),
            ["download", "uninstall"],
        ),
        (entry("local_only", downloaded=False, installed=True), ["uninstall"]),
        (entry("outdated", installed=True, peers=["p1"]), ["update", "uninstall"]),
        (entry("ready", active="download"), ["cancel"]),
        (entry("ready", installed=True, active="uninstall"), []),
    ],
)
def test_actions_are_the_valid_ones_for_each_state(
    game: dict[str, object], expected: list[str]
) -> None:
    assert vocabulary.actions(game) == expected
    words = vocabulary.game_words(game)
    assert [a["label"] for a in words["actions"]] == [vocabulary.ACTIONS[a] for a in expected]
    json.dumps(words)  # a web page gets exactly this


def test_the_deletion_question_names_what_the_user_added() -> None:
    changes = {"known": True, "files": 12, "added": 7, "sample": ["saves/a.sav", "saves/b.sav"]}
    text = vocabulary.deletion("uninstall", "aurora", changes)
    assert "7 files" in text and "saves/a.sav, saves/b.sav and 5 more" in text
    assert vocabulary.at_stake("uninstall", changes)
    assert not vocabulary.at_stake("update", changes)  # update keeps added files
    assert vocabulary.at_stake("update", {**changes, "changed": 1, "changed_sample": ["x.cfg"]})
    assert not vocabulary.at_stake("uninstall", {"known": True, "files": 3})
    assert vocabulary.at_stake("uninstall", {"known": False, "files": 3})


def test_a_download_whose_install_failed_is_not_called_a_failed_download() -> None:
    from lanspread_core.events import OpFailed, OpKind

    error = "borealis downloaded; install failed: bad CRC; try 'lanspread install borealis'"
    assert vocabulary.failure(OpFailed(OpKind.DOWNLOAD, "borealis", error)) == error + "."
    other = vocabulary.failure(OpFailed(OpKind.DOWNLOAD, "borealis", "no peer serves it"))
    assert other == "Download of borealis failed: no peer serves it."


def test_plurals_of_words_that_do_not_just_take_an_s(capsys: pytest.CaptureFixture[str]) -> None:
    from lanspread_core.cli.local import _report
    from lanspread_core.install.transactions import Outcome

    assert vocabulary.plural(1, "entry", "entries") == "1 entry"
    assert vocabulary.plural(2, "entry", "entries") == "2 entries"
    _report(Outcome("aurora", "install", "unrar", 1, 10), as_json=False)
    _report(Outcome("aurora", "install", "unrar", 11, 10), as_json=False)
    assert capsys.readouterr().out.splitlines() == [
        "install: aurora done with unrar (1 entry)",
        "install: aurora done with unrar (11 entries)",
    ]
