"""The JSONL front-end: one JSON command per input line, JSON lines out.

Every output record has ``kind``: ``result`` or ``error`` (both echo the
command's ``id``) or ``event``. The first line is the ``ready`` event. Each
command runs in its own task, so a long ``"wait": true`` install does not hold
up a ``status``. End of input shuts the peer down. The same session logic
serves the local control socket, where each client is one session.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from lanspread_core.config import PeerConfig
from lanspread_core.errors import LanspreadError

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
ReadLine = Callable[[], Awaitable[bytes]]
WriteLine = Callable[[bytes], Awaitable[None]]


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n"


async def serve_session(
    handle: PeerRuntimeHandle,
    read_line: ReadLine,
    write_line: WriteLine,
    *,
    send_ready: bool = True,
    shutdown_on_eof: bool = True,
) -> None:
    """Run one JSONL session until its input ends or the peer stops."""
    lock = anyio.Lock()

    async def emit(record: dict[str, Any]) -> None:
        async with lock:
            await write_line(encode(record))

    async def run_command(raw: bytes) -> None:
        try:
            cmd = json.loads(raw)
        except ValueError as exc:
            await emit({"kind": "error", "id": None, "error": f"not JSON: {exc}"})
            return
        if not isinstance(cmd, dict):
            await emit({"kind": "error", "id": None, "error": "a command must be a JSON object"})
            return
        cid = cmd.get("id")
        try:
            result = await handle.send(cmd)
        except LanspreadError as exc:
            await emit({"kind": "error", "id": cid, "cmd": cmd.get("cmd"), "error": str(exc)})
        except Exception as exc:  # a bug in one command must not end the session
            log.exception("command %r failed", cmd.get("cmd"))
            await emit(
                {
                    "kind": "error",
                    "id": cid,
                    "cmd": cmd.get("cmd"),
                    "error": f"internal error: {exc}",
                }
            )
        else:
            await emit({"kind": "result", "id": cid, "cmd": cmd.get("cmd"), "result": result})

    events = handle.events()
    try:
        async with anyio.create_task_group() as tg:

            async def pump_events() -> None:
                async for event in events:
                    await emit({"kind": "event", **event})

            async def stop_with_peer() -> None:
                await handle.wait_stopped()
                tg.cancel_scope.cancel()

            if send_ready:
                await emit({"kind": "event", **handle.ready_event()})
            await emit({"kind": "event", **handle.library_event()})
            tg.start_soon(pump_events)
            tg.start_soon(stop_with_peer)
            while True:
                line = await read_line()
                if not line:
                    break
                if line.strip():
                    tg.start_soon(run_command, line)
            events.close()
            if shutdown_on_eof:
                await handle.shutdown()
            tg.cancel_scope.cancel()

    finally:
        # a session that ends by an error must not leave its subscription filling up
        events.close()


async def _stdin_reader() -> ReadLine:
    """Non-blocking stdin lines (a pipe or tty); a regular file is read in a thread."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=MAX_LINE)
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    except (ValueError, OSError):
        stream = sys.stdin.buffer

        async def read_file_line() -> bytes:
            return await anyio.to_thread.run_sync(stream.readline, abandon_on_cancel=True)

        return read_file_line

    async def read_pipe_line() -> bytes:
        try:
            return await reader.readline()
        except ValueError:  # a line over the limit
            return b'{"cmd": null, "error": "line too long"}\n'

    return read_pipe_line


class JsonlFrontend:
    """``lanspread peer``: drive the peer from stdin, report on stdout."""

    name = "jsonl"

    def __init__(self, config: PeerConfig) -> None:
        self.config = config

    async def run(self, handle: PeerRuntimeHandle) -> int:
        out = sys.stdout.buffer

        async def write_line(data: bytes) -> None:
            out.write(data)
            out.flush()

        await serve_session(handle, await _stdin_reader(), write_line)
        return 1 if handle.failure else 0
