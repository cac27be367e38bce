"""The control endpoint on an OS without Unix sockets: loopback TCP and a token.

A real peer runs with ``portable.HAS_UNIX_SOCKETS`` turned off, as on
Windows; the ordinary ``lanspread`` client commands reach it through the
owner-only file it publishes, and a local connection that does not present
the token is dropped before it hears a word.
"""

from __future__ import annotations

import json
import socket
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.peerproc import PeerProc

#: Runs the ``lanspread`` script given as the first argument, Unix sockets off.
NO_UNIX_SOCKETS = (
    "import runpy, sys;"
    "from lanspread_core.system import portable;"
    "portable.HAS_UNIX_SOCKETS = False;"
    "sys.argv = sys.argv[1:];"
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


@pytest.fixture(scope="module")
def peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerProc]:
    home = tmp_path_factory.mktemp("tcp-endpoint")
    catalog = home / "catalog.json"
    create_set(home / "games", "alpha", catalog=catalog)
    args = ["--discovery", "static", "--listen", "127.0.0.1:0"]
    with PeerProc(
        home, args=args, catalog=catalog, prefix=[sys.executable, "-c", NO_UNIX_SOCKETS]
    ) as proc:
        endpoint = home / "state" / "control.sock"
        deadline = time.monotonic() + 10
        while not endpoint.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield proc


def endpoint_of(peer: PeerProc) -> Path:
    return peer.workdir / "state" / "control.sock"


def test_the_endpoint_is_an_owner_only_file_naming_a_loopback_port(peer: PeerProc) -> None:
    path = endpoint_of(peer)
    mode = path.lstat().st_mode
    assert stat.S_ISREG(mode) and stat.S_IMODE(mode) == 0o600
    record = json.loads(path.read_text())
    assert record["kind"] == "lanspread-control"
    assert isinstance(record["port"], int) and len(record["token"]) == 64


def test_the_client_commands_work_over_it(peer: PeerProc) -> None:
    proc = run_cli("status", "--state-dir", peer.workdir / "state", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert peer.peer_id[:8] in proc.stdout
    games = run_cli("games", "--json", "--state-dir", peer.workdir / "state", timeout=60)
    assert games.returncode == 0, games.stderr
    assert "aurora" in games.stdout


@pytest.mark.parametrize("first", [b"0" * 64 + b"\n", b"\n", b"not a token\n"])
def test_a_connection_without_the_token_hears_nothing(peer: PeerProc, first: bytes) -> None:
    port = json.loads(endpoint_of(peer).read_text())["port"]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(first)
        assert sock.recv(4096) == b""  # closed, and not a byte of the session


def test_the_endpoint_is_removed_when_the_peer_stops(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "games", "alpha", catalog=catalog)
    args = ["--discovery", "static", "--listen", "127.0.0.1:0"]
    with PeerProc(
        tmp_path, args=args, catalog=catalog, prefix=[sys.executable, "-c", NO_UNIX_SOCKETS]
    ) as proc:
        path = tmp_path / "state" / "control.sock"
        deadline = time.monotonic() + 10
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.is_file()
        proc.shutdown()
    assert not path.exists()
    stopped = run_cli("status", "--state-dir", tmp_path / "state", timeout=60)
    assert stopped.returncode != 0 and "no running peer" in stopped.stderr
