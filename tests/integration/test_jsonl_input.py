"""What the JSONL harness accepts on its input, against a real peer process."""

from __future__ import annotations

import json
from pathlib import Path

from support.peerproc import LOOPBACK, PeerProc


def _record(peer: PeerProc, cid: int) -> dict:
    return peer._wait(lambda r: r.get("kind") in ("result", "error") and r.get("id") == cid, 30)


def test_command_is_accepted_as_the_long_name_of_cmd(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        peer.write_raw(json.dumps({"id": 41, "command": "status"}).encode() + b"\n")
        record = _record(peer, 41)
        assert record["kind"] == "result", record
        assert record["cmd"] == "status" and record["result"]["peer_id"] == peer.peer_id
        line = {"id": 42, "command": "get-game", "game_id": "nosuch"}
        peer.write_raw(json.dumps(line).encode() + b"\n")
        record = _record(peer, 42)
        assert record["kind"] == "error" and record["cmd"] == "get-game"
        assert "nosuch" in record["error"]


def test_cmd_and_command_that_disagree_are_refused(tmp_path: Path) -> None:
    with PeerProc(tmp_path / "peer", args=LOOPBACK) as peer:
        line = {"id": 43, "cmd": "status", "command": "shutdown"}
        peer.write_raw(json.dumps(line).encode() + b"\n")
        record = _record(peer, 43)
        assert record["kind"] == "error" and "not both" in record["error"]
        assert peer.ok("status")["peer_id"] == peer.peer_id  # and nothing was shut down
