"""The JSONL front-end (``lanspread peer``): one session on stdin and stdout.

The session itself (:mod:`lanspread_core.ipc.session`) is the same one the
local control socket serves; here end of input shuts the peer down.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

import anyio

from lanspread_core.config import PeerConfig
from lanspread_core.ipc.session import MAX_LINE, LineTooLong, ReadLine, serve_session

if TYPE_CHECKING:  # the runtime pulls in aioquic; clients must start fast
    from lanspread_core.runtime.peer import PeerRuntimeHandle


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
        too_long = False
        while True:
            try:
                line = await reader.readuntil(b"\n")
            except asyncio.IncompleteReadError as exc:  # end of input
                line = b"" if too_long else exc.partial
            except asyncio.LimitOverrunError as exc:  # a line over the limit: skip it
                await reader.readexactly(exc.consumed)
                too_long = True
                continue
            if too_long:
                raise LineTooLong
            return line

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
