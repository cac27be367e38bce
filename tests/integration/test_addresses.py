"""Ports and names of real peer processes: the defaults, --data-port, a port
in use, --peer without a port, and a peer without --name."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

from lanspread_core.config import DEFAULT_PORT
from lanspread_core.system.netaddr import lan_addresses
from support.cli import LANSPREAD, run_cli
from support.peerproc import LOOPBACK, PeerProc

STATIC = ["--discovery", "static", "--ping-interval", "0.5", "--stale-timeout", "3"]


def _free_port() -> int:
    """A port number free for both TCP and UDP on loopback, right now."""
    while True:
        with socket.create_server(("127.0.0.1", 0)) as tcp:
            port = tcp.getsockname()[1]
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                udp.close()
            return int(port)


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(
        "run",
        "--games-dir",
        tmp_path / "games",
        "--state-dir",
        tmp_path / "state",
        *STATIC,
        *args,
        timeout=30,
    )


def test_a_control_port_in_use_is_one_line_with_the_option_to_use(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        proc = _run(tmp_path, "--listen", f"127.0.0.1:{port}", "--data-port", "0")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"UDP port {port} (the control plane) is already in use" in proc.stderr
    assert f"--listen 127.0.0.1:{port + 1}" in proc.stderr


def test_a_data_port_in_use_is_one_line_with_the_option_to_use(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        proc = _run(tmp_path, "--listen", "127.0.0.1:0", "--data-port", str(port))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert f"TCP port {port} (downloads) is already in use" in proc.stderr
    assert f"--data-port {port + 1}" in proc.stderr


def test_the_data_port_follows_the_control_port_unless_given(tmp_path: Path) -> None:
    port = _free_port()
    with PeerProc(tmp_path / "a", args=[*STATIC, "--listen", f"127.0.0.1:{port}"]) as a:
        assert a.ready["control"] == f"127.0.0.1:{port}"
        assert a.ready["data_port"] == port
        # not the default port: the port tells it from another peer on this machine
        assert a.ready["name"] == f"{socket.gethostname().split('.')[0]}:{port}"
    data = _free_port()
    args = [*STATIC, "--listen", "127.0.0.1:0", "--data-port", str(data)]
    with PeerProc(tmp_path / "b", args=args) as b:
        assert b.ready["data_port"] == data


def test_the_default_port_and_a_peer_given_without_one(tmp_path: Path) -> None:
    """A peer on the default port is found by ``--peer HOST`` alone, and a
    peer started without --name is known by this machine's host name."""
    host_name = socket.gethostname().split(".")[0]
    with PeerProc(tmp_path / "a", args=[*STATIC, "--listen", "127.0.0.1"]) as a:
        assert a.ready["control"] == f"127.0.0.1:{DEFAULT_PORT}"
        assert a.ready["data_port"] == DEFAULT_PORT
        assert a.ready["name"] == host_name
        args = [*LOOPBACK, "--peer", "127.0.0.1"]
        with PeerProc(tmp_path / "b", args=args) as b:
            assert b.ok("wait-peers", count=1, timeout_ms=10_000)["peers"] == 1
            (seen,) = b.ok("peers")["peers"]
            assert seen["peer_id"] == a.peer_id and seen["name"] == host_name
            assert seen["addr"] == f"127.0.0.1:{DEFAULT_PORT}"


def test_a_bare_port_is_no_peer_address(tmp_path: Path) -> None:
    proc = _run(tmp_path, "--listen", "127.0.0.1:0", "--peer", "47000")
    assert proc.returncode == 2
    assert "'47000' is a port without a host; give HOST or HOST:PORT" in proc.stderr


def test_run_prints_where_friends_can_reach_this_peer(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [str(LANSPREAD), "run", "--games-dir", str(tmp_path / "g"), "--state-dir",
         str(tmp_path / "s"), *STATIC, "--listen", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        # the header ends with the line for friends (or why there is none)
        while not lines or not lines[-1].startswith(("Friends", "Only this machine")):
            line = proc.stdout.readline()
            assert line, f"run ended before its header was out: {lines}"
            lines.append(line.rstrip("\n"))
    finally:
        proc.terminate()
        proc.wait(10)
    every = f"UDP {port} (peers) and TCP {port} (downloads), on every address"
    assert any(every in x for x in lines), lines
    friends = [x for x in lines if x.startswith("Friends can add you with --peer ")]
    found = lan_addresses()
    if found:
        assert friends == [f"Friends can add you with --peer {found[0]}:{port}"], lines
    else:
        assert "Only this machine can reach this peer (no LAN address found)." in lines
