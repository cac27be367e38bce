"""Hostile lines on the JSONL harness: stdin and the local control socket.

Whatever one line holds, however nested or large, it gets one ``error``
record and the peer goes on.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from pathlib import Path

from lanspread_core.ipc.session import MAX_LINE
from lanspread_core.wire.messages import MAX_PEER_NAME
from support.peerproc import LOOPBACK, PeerProc

HOSTILE = [
    b"[" * 50_000,  # nested far past any recursion limit
    b'{"cmd": "status", "x": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
    b"x" * (MAX_LINE + 10),  # over the limit, by a little
    b'{"cmd": "status", "pad": "' + b"y" * (3 * MAX_LINE) + b'"}',  # and by a lot
    b"\xff\xfe not UTF-8",
]


def _errors(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") in ("error", "garbage", "result")]


def test_stdin_survives_every_hostile_line_with_one_error_each(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        for line in HOSTILE:
            start = peer.mark()
            peer.write_raw(line + b"\n")
            record = peer.call("status")  # answered after the hostile line's own record
            assert record["kind"] == "result", peer.stderr()[-2000:]
            with peer._cond:
                seen = _errors(peer.records[start:])
            assert [r["kind"] for r in seen] == ["error", "result"], (line[:40], seen)
            assert seen[0]["id"] is None
        assert "Traceback" not in peer.stderr()


def _control_socket(state: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    fd = os.open(state, os.O_RDONLY)
    try:
        sock.connect(f"/proc/self/fd/{fd}/control.sock")
    finally:
        os.close(fd)
    sock.settimeout(30)
    return sock


def test_control_socket_survives_every_hostile_line_with_one_error_each(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        with _control_socket(tmp_path / "peer" / "state") as sock:
            stream = sock.makefile("rb")

            def replies() -> list[dict]:
                """Records up to the answer to the status sent after a hostile line."""
                seen = []
                while True:
                    record = json.loads(stream.readline())
                    if record["kind"] != "event":
                        seen.append(record)
                    if record["kind"] == "result":
                        return seen

            for number, line in enumerate(HOSTILE):
                sock.sendall(line + b"\n" + json.dumps({"id": number, "cmd": "status"}).encode())
                sock.sendall(b"\n")
                seen = replies()
                assert [r["kind"] for r in seen] == ["error", "result"], (line[:40], seen)
                assert seen[0]["id"] is None and seen[1]["id"] == number
        assert peer.ok("status")["peer_id"] == peer.peer_id  # the peer went on
        assert "Traceback" not in peer.stderr()


def test_a_huge_game_id_is_refused_without_echoing_it(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        for cmd in ("get-game", "install", "download", "cancel"):
            record = peer.call(cmd, game_id="g" * 900_000)
            assert record["kind"] == "error", record
            assert len(record["error"]) < 300, (cmd, len(record["error"]))
        assert peer.ok("status")["peer_id"] == peer.peer_id


def test_a_long_peer_name_is_cut_to_what_other_peers_accept(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=[*LOOPBACK, "--name", "n" * 500]) as peer:
        assert peer.ready["name"] == "n" * MAX_PEER_NAME


def test_a_peer_makes_a_wide_existing_state_directory_owner_only(tmp_path: Path) -> None:
    state = tmp_path / "peer" / "state"
    state.mkdir(parents=True)
    state.chmod(0o755)
    with PeerProc(tmp_path / "peer", args=LOOPBACK):
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
