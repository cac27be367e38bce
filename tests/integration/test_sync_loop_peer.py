"""A real peer against a rogue control-plane peer that announces library
revision 10 but serves snapshots at revision 3: the victim's sync stops after a
bounded number of requests, the rogue is named once in the log and then
ignored, and the victim carries on."""

from __future__ import annotations

import collections
import time
from pathlib import Path

import anyio
import anyio.abc
import anyio.from_thread

from lanspread_core.control.identity import load_or_create_identity
from lanspread_core.control.server import ControlEndpoint, serve_control
from lanspread_core.library.statedir import StateDir
from lanspread_core.runtime.sync import MISBEHAVING_AFTER, SYNC_ATTEMPTS
from lanspread_core.wire.messages import (
    PROTO_VER,
    Ack,
    Error,
    GetDelta,
    GetSnapshot,
    Hello,
    HelloAck,
    LibrarySnapshot,
    Message,
    Ping,
    Pong,
)
from support.peerproc import LOOPBACK, PeerProc

ANNOUNCED, SERVED = 10, 3


class Rogue:
    """A control-plane server that never serves the revision it announces."""

    def __init__(self, state: Path) -> None:
        self.identity = load_or_create_identity(StateDir(state))
        self.requests: collections.Counter[str] = collections.Counter()
        self.port = 0

    async def handle(self, msg: Message, remote: tuple[str, int]) -> Message:
        self.requests[msg.TYPE] += 1
        me = self.identity.peer_id
        if isinstance(msg, Hello):
            return HelloAck(
                me, PROTO_VER, ANNOUNCED, "r" * 32, ("library-delta",), 1, "rogue", self.port
            )
        if isinstance(msg, GetSnapshot | GetDelta):
            return LibrarySnapshot(me, SERVED, ())
        if isinstance(msg, Ping):
            return Pong(me, ANNOUNCED, "r" * 32)
        if msg.TYPE == "Goodbye":
            return Ack()
        return Error.of("unsupported", msg.TYPE)

    def syncs(self) -> int:
        return self.requests["GetSnapshot"] + self.requests["GetDelta"]


def test_a_peer_that_never_serves_what_it_announces_is_ignored(tmp_path: Path) -> None:
    rogue = Rogue(tmp_path / "rogue")

    async def serve(*, task_status: anyio.abc.TaskStatus[ControlEndpoint]) -> None:
        await serve_control("127.0.0.1", 0, rogue.identity, rogue.handle, task_status=task_status)

    with anyio.from_thread.start_blocking_portal() as portal:
        future, endpoint = portal.start_task(serve)
        rogue.port = endpoint.port
        args = [*LOOPBACK, "--peer", f"127.0.0.1:{rogue.port}"]
        with PeerProc(tmp_path / "victim", args=args) as victim:
            victim.wait_event(lambda e: e["event"] == "peer-joined")
            deadline = time.monotonic() + 30
            while "misbehaves" not in victim.stderr():
                assert time.monotonic() < deadline, victim.stderr()[-2000:]
                time.sleep(0.1)
            flagged = rogue.syncs()
            assert flagged <= SYNC_ATTEMPTS * MISBEHAVING_AFTER + SYNC_ATTEMPTS
            pings = rogue.requests["Ping"]
            while rogue.requests["Ping"] < pings + 4:  # it is still pinged, so it stays
                assert time.monotonic() < deadline, rogue.requests
                time.sleep(0.1)
            assert rogue.syncs() == flagged  # but its announcements are ignored
            assert victim.stderr().count("misbehaves") == 1
            peers = victim.ok("peers")["peers"]
            assert [p["peer_id"] for p in peers] == [rogue.identity.peer_id]
            assert peers[0]["library_rev"] == SERVED
        future.cancel()
