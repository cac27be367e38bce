"""A client of a running peer's local control socket (``<state_dir>/control.sock``).

It speaks the JSONL protocol of docs/protocol.md: commands go out with an
``id``, the matching ``result`` or ``error`` comes back, and every event of
the peer arrives in between (callers pick the ones they want, such as the
``<op>-progress`` of the game they asked about). Nothing here knows the
command set, so commands the peer learns later work without a change.

    async with connect(state_dir) as peer:
        result = await peer.call("install", game_id="quake", wait=True,
                                 on_event=print)

:func:`call` is the blocking form for one command.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
from anyio.streams.buffered import BufferedByteReceiveStream

from lanspread_core.errors import LanspreadError
from lanspread_core.events import Event, parse_event
from lanspread_core.ipc.session import MAX_LINE
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.portable import connect_private

#: Seconds to wait for a peer's first line (its ``ready`` event).
GREETING_TIMEOUT = 10

Record = dict[str, Any]
OnEvent = Callable[[Event], None]


class NoRunningPeer(LanspreadError):
    """No peer answers on the state directory's control socket."""

    def __init__(self, state: StateDir) -> None:
        super().__init__(
            f"no running peer for state dir {state.path}; start one with 'lanspread run'"
        )
        self.state = state


class PeerCommandError(LanspreadError):
    """The peer refused or failed a command; the message is the peer's sentence."""

    def __init__(self, message: str, cmd: str | None = None) -> None:
        super().__init__(message)
        self.cmd = cmd


class PeerGone(LanspreadError):
    """The peer stopped (or the connection broke) before a command's answer came."""


class PeerClient:
    """One session with a running peer. Use :func:`connect` to make one."""

    def __init__(self, stream: anyio.abc.ByteStream) -> None:
        self._stream = stream
        self._reader = BufferedByteReceiveStream(stream)
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[anyio.Event, list[Record]]] = {}
        self._listeners: list[OnEvent] = []
        self._greeted = anyio.Event()
        self._closed = False
        #: the peer's ``ready`` event: peer_id, control address, games_dir, state_dir ...
        self.ready: Record = {}

    async def call(self, cmd: str, *, on_event: OnEvent | None = None, **fields: Any) -> Any:
        """Send one command and return its result; the peer's error is raised.

        ``on_event`` sees every event that arrives until the answer does.
        """
        if self._closed:
            raise PeerGone("the peer has gone")
        cid = next(self._ids)
        done = anyio.Event()
        slot: list[Record] = []
        self._waiting[cid] = (done, slot)
        if on_event is not None:
            self._listeners.append(on_event)
        try:
            line = json.dumps({"id": cid, "cmd": cmd, **fields}).encode() + b"\n"
            try:
                await self._stream.send(line)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
                raise PeerGone(f"the peer went away before {cmd} was sent") from exc
            await done.wait()
        finally:
            self._waiting.pop(cid, None)
            if on_event is not None:
                self._listeners.remove(on_event)
        if not slot:
            raise PeerGone(f"the peer stopped before {cmd} finished")
        record = slot[0]
        if record.get("kind") == "error":
            raise PeerCommandError(str(record.get("error", "failed")), cmd)
        return record.get("result")

    async def _read(self) -> None:
        try:
            while True:
                try:
                    line = await self._reader.receive_until(b"\n", MAX_LINE)
                except (
                    anyio.EndOfStream,
                    anyio.IncompleteRead,
                    anyio.BrokenResourceError,
                    anyio.ClosedResourceError,
                    anyio.DelimiterNotFound,
                    OSError,
                ):
                    return
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    self._dispatch(record)
        finally:
            self._closed = True
            self._greeted.set()
            for done, _ in list(self._waiting.values()):
                done.set()

    def _dispatch(self, record: Record) -> None:
        kind = record.get("kind")
        if kind == "event":
            if not self._greeted.is_set():
                # the greeting is two lines, ``ready`` then the library snapshot,
                # so a caller's listeners only ever see what came after it
                if record.get("event") == "ready":
                    self.ready = record
                elif record.get("event") == "library" and self.ready:
                    self._greeted.set()
                return
            event = parse_event({k: v for k, v in record.items() if k != "kind"})
            for listener in list(self._listeners):
                listener(event)
        elif kind in ("result", "error"):
            waiting = self._waiting.get(record.get("id"))  # type: ignore[arg-type]
            if waiting is not None:
                waiting[1].append(record)
                waiting[0].set()


@contextlib.asynccontextmanager
async def connect(state_dir: Path | None) -> AsyncIterator[PeerClient]:
    """A session with the peer running on ``state_dir``; :class:`NoRunningPeer` if none."""
    state = StateDir(state_dir)
    path = state.control_socket
    try:
        stream = await connect_private(path)
    except (FileNotFoundError, ConnectionRefusedError, NotADirectoryError):
        # no endpoint, or one a killed peer left behind
        raise NoRunningPeer(state) from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise LanspreadError(f"cannot reach the peer at {path}: {reason}") from exc
    try:
        async with stream, anyio.create_task_group() as tg:
            client = PeerClient(stream)
            tg.start_soon(client._read)
            with anyio.move_on_after(GREETING_TIMEOUT):
                await client._greeted.wait()
            if not client.ready:
                raise LanspreadError(f"the peer at {path} did not answer")
            try:
                yield client
            finally:
                tg.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # the reader never fails, so the one error is the caller's own: pass it on as is
        leaves = _leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


def call(state_dir: Path | None, cmd: str, **fields: Any) -> Any:
    """Blocking: run one command on the peer running on ``state_dir``."""

    async def main() -> Any:
        async with connect(state_dir) as peer:
            return await peer.call(cmd, **fields)

    return anyio.run(main, backend="asyncio")
