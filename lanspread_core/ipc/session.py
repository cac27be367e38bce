"""One JSONL session: command lines in, result, error and event lines out.

Every output record has ``kind``: ``result`` or ``error`` (both echo the
command's ``id``) or ``event``. The ``ready`` and ``library`` events come
first. Each command runs in its own task, so a long ``"wait": true`` install
does not hold up a ``status``. ``lanspread peer`` runs one session on its
stdin and stdout; the local control socket runs one per client. The format is
the contract in ``docs/protocol.md``; events become JSON only through
:meth:`~lanspread_core.events.Event.to_json`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from lanspread_core.errors import LanspreadError

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
ReadLine = Callable[[], Awaitable[bytes]]
WriteLine = Callable[[bytes], Awaitable[None]]
TOO_LONG = f"a command line must be at most {MAX_LINE} bytes"


class LineTooLong(Exception):
    """A line over :data:`MAX_LINE` bytes; the reader skipped it up to its newline."""


def encode(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n"


def _encode_any(record: dict[str, Any]) -> bytes:
    """``record`` as a line, or an error record when it cannot be one (say, a deep ``id``)."""
    try:
        return encode(record)
    except (ValueError, TypeError, RecursionError):
        log.debug("a %s record could not be serialised", record.get("kind"))
        error = "the reply could not be written as JSON (is the id nested too deeply?)"
        return encode({"kind": "error", "id": None, "cmd": None, "error": error})


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
            await write_line(_encode_any(record))

    async def run_command(raw: bytes) -> None:
        if len(raw) > MAX_LINE + 2:  # a reader without a limit (stdin from a file)
            await emit({"kind": "error", "id": None, "error": TOO_LONG})
            return
        try:
            cmd = json.loads(raw)
        except RecursionError:
            await emit({"kind": "error", "id": None, "error": "not JSON: nested too deeply"})
            return
        except ValueError as exc:
            await emit({"kind": "error", "id": None, "error": f"not JSON: {exc}"})
            return
        if not isinstance(cmd, dict):
            await emit({"kind": "error", "id": None, "error": "a command must be a JSON object"})
            return
        cid = cmd.get("id")
        if "command" in cmd:  # the long name of "cmd" is accepted too
            if "cmd" in cmd and cmd["cmd"] != cmd["command"]:
                error = "give the command once, as 'cmd' or as 'command', not both"
                await emit({"kind": "error", "id": cid, "cmd": cmd["cmd"], "error": error})
                return
            cmd = {"cmd": cmd["command"], **{k: v for k, v in cmd.items() if k != "command"}}
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
                    await emit({"kind": "event", **event.to_json()})

            async def stop_with_peer() -> None:
                await handle.wait_stopped()
                tg.cancel_scope.cancel()

            if send_ready:
                await emit({"kind": "event", **handle.ready_event().to_json()})
            await emit({"kind": "event", **handle.library_event().to_json()})
            tg.start_soon(pump_events)
            tg.start_soon(stop_with_peer)
            while True:
                try:
                    line = await read_line()
                except LineTooLong:
                    await emit({"kind": "error", "id": None, "error": TOO_LONG})
                    continue
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
