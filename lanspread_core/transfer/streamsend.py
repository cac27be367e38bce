"""The sending side of a stream-install: one provider pass into frames on a socket.

Runs in a worker thread with a blocking socket. The socket's send buffer is
the bounded sink: when the receiver is slow the provider waits in ``sendall``;
when it goes away or cancels, ``sendall`` fails, the sink raises
:class:`~lanspread_core.errors.Cancelled`, the provider stops, and the
outbound transfer is released.
"""

from __future__ import annotations

import logging
import socket
import zlib
from collections.abc import Callable
from pathlib import Path

from lanspread_core.archive.listing import check_entries, stream_listed
from lanspread_core.archive.protocol import Entry, EntryKind, ProbeResult
from lanspread_core.archive.provider import ArchiveProvider
from lanspread_core.errors import ArchiveError, Cancelled, LanspreadError
from lanspread_core.library.layout import root_archives
from lanspread_core.system.faults import fault_once
from lanspread_core.transfer.handoff import Handoff
from lanspread_core.wire.dataplane import encode_status
from lanspread_core.wire.streamframes import (
    DATA,
    END,
    ENTRIES,
    ERROR,
    FILE_END,
    HEADER,
    MAX_DATA,
    frame,
    json_frame,
)

log = logging.getLogger(__name__)

Choose = Callable[[list[Path]], tuple[ArchiveProvider, ProbeResult]]
#: small provider blocks are gathered into data frames of about this size
COALESCE = 512 * 1024


class SocketSink:
    """An EntrySink that writes stream frames; counts bytes and files.

    Providers hand over blocks of any size (libarchive's are often 10–64 KiB);
    they are gathered into frames of ~512 KiB so the per-frame cost (a header,
    a syscall, the receiver's Python loop) stays small.
    """

    def __init__(self, conn: socket.socket) -> None:
        self.conn = conn
        self.crc = 0
        self.files = 0
        self.bytes = 0
        self._pending = bytearray()
        # sends run in a second thread while the provider reads on
        self._out = Handoff("lanspread-stream-sender", depth=8)

    def _sendall(self, *parts: bytes | memoryview) -> None:
        try:
            for part in parts:
                self.conn.sendall(part)
        except OSError as exc:
            raise Cancelled(f"the receiver went away ({exc.strerror or exc})") from None

    def _send(self, *parts: bytes | memoryview) -> None:
        """Queue ``parts`` for the sending thread (they must not change afterwards)."""
        self._out.submit(self._sendall, *parts)

    def finish(self) -> None:
        """Wait until everything queued is sent; raises what sending raised."""
        self._out.close()

    def abandon(self) -> None:
        self._out.abandon()

    def begin(self, entry: Entry) -> None:
        self.crc = 0
        self._send(json_frame(HEADER, entry.to_json()))

    def write(self, data: bytes | memoryview) -> None:
        view = memoryview(data).cast("B")
        self.crc = zlib.crc32(view, self.crc)
        self.bytes += len(view)
        if len(self._pending) + len(view) < COALESCE:
            self._pending += view
            return
        if self._pending:
            self._pending += view
            view = memoryview(bytes(self._pending))
            self._pending.clear()
        elif not isinstance(data, bytes):
            view = memoryview(bytes(view))  # the provider may reuse its buffer
        self._send_data(view)

    def _flush(self) -> None:
        if self._pending:
            view = memoryview(bytes(self._pending))
            self._pending.clear()
            self._send_data(view)

    def _send_data(self, view: memoryview) -> None:
        while view:
            piece, view = view[:MAX_DATA], view[MAX_DATA:]
            if fault_once("stream.corrupt_once"):
                bad = bytearray(piece)
                bad[len(bad) // 2] ^= 0xFF
                log.warning("fault stream.corrupt_once: one byte flipped")
                self._send(*frame(DATA, bytes(bad)))
            elif fault_once("stream.truncate_once"):
                log.warning("fault stream.truncate_once: ending the stream mid-file")
                self._send(*frame(DATA, piece[: len(piece) // 2]))
                self._out.close()
                self.conn.shutdown(socket.SHUT_RDWR)
                raise Cancelled("stream truncated on purpose (fault switch)")
            else:
                self._send(*frame(DATA, piece))

    def end(self, entry: Entry) -> None:
        self._flush()
        if entry.kind is EntryKind.FILE:
            self.files += 1
            self._send(json_frame(FILE_END, {"crc32": f"{self.crc:08x}"}))


def send_stream(conn: socket.socket, root: Path, choose: Choose) -> int:
    """Stream every file of ``root``'s archives to ``conn``; return the bytes sent.

    A refusal (no provider can read the archives, an unsafe archive) goes out
    as the status frame; a failure half-way as an ``X`` frame. The entries are
    checked before the status, and the provider's pass is held to them, so
    nothing unannounced or unchecked ever goes on the wire.
    """
    archives = root_archives(root)
    # a deep send buffer lets the provider read ahead while the receiver writes
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    try:
        provider, probe = choose(archives)
        listing = check_entries(provider.entries(archives))
    except LanspreadError as exc:
        conn.sendall(encode_status(str(exc)))
        return 0
    conn.sendall(encode_status())
    sink = SocketSink(conn)
    entries = [e.to_json() for e in listing.entries]
    sink._send(json_frame(ENTRIES, {"format": probe.format, "entries": entries}))
    try:
        stream_listed(provider, archives, sink, listing)
        sink._send(json_frame(END, {"files": sink.files, "bytes": sink.bytes}))
        sink.finish()
    except Cancelled:
        sink.abandon()
        log.info("stream of %s ended: the receiver went away", root.name)
    except ArchiveError as exc:
        sink.abandon()
        sink._sendall(json_frame(ERROR, {"error": str(exc)}))
    except BaseException:
        sink.abandon()
        raise
    return sink.bytes
