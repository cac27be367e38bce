"""Where a user gets stuck, the refusal says what to do next: real peers and
real CLI processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from lanspread_fixture.gamesets import create_set
from support.cli import LANSPREAD, run_cli
from support.peerproc import LOOPBACK, PeerProc, sources_of


def test_an_unknown_game_id_suggests_the_nearest_ones(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    games = tmp_path / "peer" / "games"
    create_set(games, "alpha", catalog=catalog)
    create_set(tmp_path / "spare", "bravo", catalog=catalog)  # cascade, ember: catalog only
    with PeerProc(tmp_path / "peer", args=LOOPBACK, catalog=catalog) as peer:
        error = peer.call("download", game_id="cascad")["error"]
        assert error == "cascad is not in the catalog; did you mean cascade?"
        assert peer.call("get-game", game_id="borealsi")["error"].endswith(
            "; did you mean borealis?"
        )
        assert peer.call("stream-install", game_id="embr")["error"].endswith(
            "; did you mean ember?"
        )
    proc = run_cli("uninstall", "auror", "--games-dir", games, "--state-dir", tmp_path / "s")
    assert proc.returncode == 2
    assert proc.stderr.strip().endswith(
        "there is no game 'auror' in " + f"{games}; did you mean aurora?"
    )


def test_install_of_a_game_that_is_not_downloaded_says_to_download_it(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    games = tmp_path / "peer" / "games"
    create_set(games, "alpha", catalog=catalog)
    create_set(tmp_path / "elsewhere", "bravo", catalog=catalog)  # cascade: catalog only
    (games / "dunes").mkdir()  # a download that never finished: no version.ini
    args = ("--games-dir", games, "--state-dir", tmp_path / "s", "--catalog", catalog)
    proc = run_cli("install", "cascade", *args)
    assert proc.returncode == 1
    want = "cascade is not downloaded here; download it first: 'lanspread download cascade'"
    assert want in proc.stderr and proc.stderr.count("\n") == 1
    proc = run_cli("install", "dunes", *args)
    assert "dunes is not downloaded (no version.ini); download it first" in proc.stderr
    # an id no catalog names is no game to download, but maybe a typo
    proc = run_cli("install", "auror", *args)
    assert proc.stderr.strip().endswith(
        f"there is no game 'auror' in {games}; did you mean aurora?"
    )
    with PeerProc(tmp_path / "peer", args=LOOPBACK, catalog=catalog) as peer:
        assert peer.call("install", game_id="cascade")["error"].startswith(want)
        assert peer.call("install", game_id="nosuch")["error"].startswith("there is no game")


def test_no_peer_serving_the_catalog_version_says_what_the_peers_have(tmp_path: Path) -> None:
    """The seed holds ember at the version of its own catalog; the guest's catalog
    names another, so the seed is no source, and the refusal says what it has."""
    seed_catalog, guest_catalog = tmp_path / "seed.json", tmp_path / "guest.json"
    create_set(tmp_path / "seed" / "games", "bravo", catalog=seed_catalog)
    data = json.loads(seed_catalog.read_text())
    held = next(g["version"] for g in data["games"] if g["id"] == "ember")
    for game in data["games"]:
        if game["id"] == "ember":
            game["version"] = "3.1"
            game.pop("hashes", None)
    guest_catalog.write_text(json.dumps(data))
    with PeerProc(tmp_path / "guest", args=LOOPBACK, catalog=guest_catalog) as guest:
        alone = guest.call("download", game_id="ember", wait=True)["error"]
        assert alone.startswith("no peer serves ember 3.1: no other peer is known yet")
        args = [*LOOPBACK, "--name", "seed"]
        with PeerProc(tmp_path / "seed", args=args, catalog=seed_catalog) as seed:
            guest.ok("connect", addr=seed.control)
            sources_of(guest, "cascade", 1)  # the seed's library has arrived
            error = guest.call("download", game_id="ember", wait=True)["error"]
            assert error == f"ember: your catalog says 3.1; 1 peer has {held} (seed)"
            # the seed is no source of a version the catalog does not name
            listed = {g["id"]: g for g in guest.ok("list-games")["games"]}
            assert "ember" not in listed or listed["ember"]["peers"] == []
            assert guest.ok("get-game", game_id="cascade")["peers"] == [seed.peer_id]


def test_no_peer_having_the_game_names_what_they_do_have(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "bravo", catalog=catalog)
    create_set(tmp_path / "spare", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "seed", args=[*LOOPBACK, "--name", "seed"], catalog=catalog) as seed:
        args = [*LOOPBACK, "--peer", seed.control]
        with PeerProc(tmp_path / "guest", args=args, catalog=catalog) as guest:
            sources_of(guest, "cascade", 1)
            error = guest.call("download", game_id="aurora", wait=True)["error"]
            want = (
                "no peer serves aurora 1.0: the one other peer, seed, has borealis, cascade, ember"
            )
            assert error == want


def test_run_says_in_a_line_of_its_own_that_it_created_the_games_folder(tmp_path: Path) -> None:
    games = tmp_path / "not" / "yet"
    proc = subprocess.Popen(
        [str(LANSPREAD), "run", "--games-dir", str(games), "--state-dir", str(tmp_path / "s"),
         *LOOPBACK],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        while not lines or not lines[-1].startswith(("Friends", "Only this machine")):
            line = proc.stdout.readline()
            assert line, lines
            lines.append(line.rstrip("\n"))
    finally:
        proc.terminate()
        proc.wait(10)
    assert (
        f"Created an empty games folder, {games}: put game folders in it, or give --games-dir."
        in lines
    )
    assert f"  games dir     {games}" in lines


def test_scan_and_recover_while_a_peer_runs_point_to_what_works(tmp_path: Path) -> None:
    state = tmp_path / "peer" / "state"
    with PeerProc(tmp_path / "peer", args=LOOPBACK):
        proc = run_cli("scan", "--state-dir", state, "--games-dir", tmp_path / "peer" / "games")
        assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(
            "lanspread: scan: this state directory is in use by a running lanspread peer (pid "
        )
        assert "'lanspread games' lists the library" in proc.stderr
        proc = run_cli("recover", "--state-dir", state, "--games-dir", tmp_path / "peer" / "games")
        assert proc.returncode == 1
        assert "recover: this state directory is in use by a running lanspread peer" in proc.stderr
        assert "nothing to do now" in proc.stderr


def test_recover_says_what_it_did_or_that_there_was_nothing(tmp_path: Path) -> None:
    games = tmp_path / "games"
    create_set(games, "alpha")
    args = ("--games-dir", games, "--state-dir", tmp_path / "state")
    proc = run_cli("recover", *args)
    assert (proc.returncode, proc.stdout) == (0, f"nothing to recover in {games}\n")
    staging = games / "aurora" / ".local.installing"
    staging.mkdir()
    (staging / ".lanspread_owned").write_text("ours")
    proc = run_cli("recover", *args)
    assert proc.returncode == 0 and proc.stderr == ""
    assert proc.stdout == "recovered: aurora: removed a leftover staging folder\n"
    assert not staging.exists()


def test_counts_are_worded_with_the_right_plural(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        error = peer.call("wait-peers", count=1, timeout_ms=100)["error"]
        assert error == "only 0 of 1 peer after 0.1s"
