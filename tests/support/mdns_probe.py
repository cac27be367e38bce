"""Run MdnsDiscovery in this network namespace and print what it sees.

usage: python mdns_probe.py PEER_ID [--rev N] [--port P]

One JSON line per event, each with ``t`` (epoch seconds) and ``event``:
``start``, ``ready`` (announced), ``seen``, ``gone``, ``updated`` and
``stopped``. SIGUSR1 bumps ``library_rev`` and re-announces; SIGTERM or
SIGINT stops the backend (goodbye packets) and exits 0.
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
import time
from dataclasses import replace
from typing import Any

import anyio

from lanspread_core.discovery.base import Announcement, SeenPeer
from lanspread_core.discovery.mdns import MdnsDiscovery

LOOP_THREAD = threading.get_ident()


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"t": time.time(), "event": event, **fields}), flush=True)


class PrintSink:
    def seen(self, peer: SeenPeer) -> None:
        emit(
            "seen",
            host=peer.host,
            port=peer.port,
            peer_id=peer.peer_id,
            library_rev=peer.library_rev,
            source=peer.source,
            loop_thread=threading.get_ident() == LOOP_THREAD,
        )

    def gone(self, peer_id: str) -> None:
        emit("gone", peer_id=peer_id, loop_thread=threading.get_ident() == LOOP_THREAD)


async def main(args: argparse.Namespace) -> None:
    me = Announcement(args.peer_id, 1, args.rev, args.port, args.port + 1, name=args.peer_id)
    backend = MdnsDiscovery()
    emit("start")
    with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT, signal.SIGUSR1) as signals:
        async with anyio.create_task_group() as tg:
            await tg.start(backend.run, me, PrintSink())
            emit("ready")
            async for sig in signals:
                if sig != signal.SIGUSR1:
                    break
                me = replace(me, library_rev=me.library_rev + 1)
                await backend.update(me)
                emit("updated", library_rev=me.library_rev)
            stopping = time.monotonic()
            tg.cancel_scope.cancel()
    emit("stopped", close_secs=time.monotonic() - stopping)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("peer_id")
    parser.add_argument("--rev", type=int, default=1)
    parser.add_argument("--port", type=int, default=4433)
    anyio.run(main, parser.parse_args())
