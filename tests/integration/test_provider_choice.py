"""Choosing a provider, with real processes: refused at start when it cannot be,
honoured by a running peer, and named when another one would have worked."""

from __future__ import annotations

import re
from pathlib import Path

from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.peerproc import LOOPBACK, PeerProc, sources_of

NO_LIBARCHIVE = {"LIBARCHIVE": "/nonexistent/libarchive.so"}


def _start(tmp_path: Path, command: str, *args: str, env: dict[str, str] | None = None):
    return run_cli(
        command,
        "--games-dir",
        tmp_path / "games",
        "--state-dir",
        tmp_path / "state",
        *LOOPBACK,
        *args,
        env=env,
        timeout=30,
    )


def test_a_provider_that_is_not_installed_is_refused_at_start(tmp_path: Path) -> None:
    for command in ("run", "peer"):
        proc = _start(tmp_path, command, "--provider", "rar")
        assert proc.returncode == 2, proc
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert "provider 'rar' is not installed (installed: " in proc.stderr
        assert "unrar" in proc.stderr and "pip install" not in proc.stderr
        assert proc.stdout == ""  # nothing started


def test_a_missing_system_libarchive_names_the_system_package(tmp_path: Path) -> None:
    create_set(tmp_path / "games", "alpha")
    proc = run_cli("inspect", tmp_path / "games" / "aurora", "--provider", "libarchive",
                   env=NO_LIBARCHIVE)  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "the libarchive library is not installed on this system" in proc.stderr
    assert "sudo apt-get install libarchive13" in proc.stderr
    assert "pip install" not in proc.stderr and "reinstall" not in proc.stderr
    # a peer told to use it does not start without it
    proc = _start(tmp_path, "run", "--provider", "libarchive", env=NO_LIBARCHIVE)
    assert proc.returncode == 1 and "sudo apt-get install libarchive13" in proc.stderr
    # auto goes on with the providers that load
    proc = run_cli("inspect", tmp_path / "games" / "aurora", env=NO_LIBARCHIVE)
    assert proc.returncode == 0 and proc.stdout.startswith("provider unrar:"), proc.stderr


def test_an_unknown_provider_is_not_sent_to_a_package_that_does_not_exist(
    tmp_path: Path,
) -> None:
    create_set(tmp_path / "games", "alpha")
    proc = run_cli("inspect", tmp_path / "games" / "aurora", "--provider", "7zip")
    assert proc.returncode == 2
    assert "provider '7zip' is not installed" in proc.stderr
    assert "lanspread-7zip" not in proc.stderr and "pip install" not in proc.stderr


def test_install_through_a_running_peer_honours_provider(tmp_path: Path) -> None:
    create_set(tmp_path / "peer" / "games", "alpha")
    state = tmp_path / "peer" / "state"
    with PeerProc(tmp_path / "peer", args=[*LOOPBACK, "--provider", "libarchive"]):
        proc = run_cli("install", "aurora", "--provider", "unrar", "--state-dir", state)
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == "install: aurora done with unrar"
        # a name the peer does not have is refused with the reason, and nothing runs
        proc = run_cli("install", "borealis", "--provider", "rar", "--state-dir", state)
        assert proc.returncode != 0
        assert "provider 'rar' is not installed" in proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert not (tmp_path / "peer" / "games" / "borealis" / "local").exists()


def test_a_download_whose_install_fails_says_so_and_names_a_provider_that_can(
    tmp_path: Path,
) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    with PeerProc(tmp_path / "seed", args=LOOPBACK, catalog=catalog) as seed:
        args = [*LOOPBACK, "--peer", seed.control, "--provider", "fixture"]
        with PeerProc(tmp_path / "guest", args=args, catalog=catalog) as guest:
            sources_of(guest, "borealis", 1)
            record = guest.call("download", game_id="borealis", wait=True, timeout=60)
            assert record["kind"] == "error", record
            error = record["error"]
            assert error.startswith("borealis downloaded; install failed: "), error
            assert "fixture" in error  # why the configured provider could not
            found = re.search(r"; try 'lanspread install borealis --provider (\w+)'$", error)
            assert found and found[1] in ("libarchive", "unrar"), error
            # the download is kept, and the named provider installs it
            entry = guest.ok("get-game", game_id="borealis")
            assert entry["downloaded"] and not entry["installed"]
            result = guest.ok("install", game_id="borealis", provider=found[1], wait=True)
            assert result["provider"] == found[1]
            assert (guest.games_dir / "borealis" / "local").is_dir()
