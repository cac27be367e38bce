"""The receiving side of the data plane: fetch granted chunks, verify, write.

Blocking by design: the downloader keeps a :class:`DataConnection` per
stream to a source peer and receives on it in a worker thread, where a plain
blocking socket with ``MSG_WAITALL`` fills a whole chunk in one system call,
with no event-loop hop per buffer.
Verifying is pipelined with receiving: while the next chunk arrives, a helper
thread hashes the previous one (``blake3`` releases the GIL) and stores it
at its offset. Two chunk buffers per calling thread are allocated once
and reused, so a download does not allocate per chunk. Measured on loopback
(``benchmarks/bench_dataplane.py``), the pipeline is what brings hashing and
writing close to a bare ``recv_into`` that throws the bytes away.

A chunk whose bytes do not match its hash is reported (``on_chunk(job,
False)``) and not written, and the connection carries on: the other chunks
may be fine, and the planner re-fetches the bad one elsewhere and counts a
strike against this peer. The connection failing (refused, stalled, closed
early) raises :class:`SourceFailed`; the chunks not yet reported are the
unfinished ones.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Protocol

from lanspread_core.dataplane.errors import SourceFailed, SourceRefused
from lanspread_core.errors import Cancelled
from lanspread_core.library.manifest import ALGO, ChunkRange, hash_chunk
from lanspread_core.system.portable import set_recv_timeout
from lanspread_core.wire.dataplane import STATUS_MAX, encode_request, parse_status
from lanspread_core.wire.errors import WireError
from lanspread_core.wire.framing import HEADER

#: One chunk to fetch and verify: path, chunk index, offset, length, hash.
ChunkJob = ChunkRange

#: How often a blocked receive wakes to look at ``cancel`` and the stall clock.
POLL_INTERVAL = 0.2
#: Chunk buffers per fetch: one being received while one is verified and written.
PIPELINE_DEPTH = 2
#: Receive buffer asked for a stream-install, whose sender reads ahead of the receiver.
STREAM_RCVBUF = 8 << 20


class ChunkWriter(Protocol):
    """Stores a verified chunk at its offset (see :class:`~.files.DownloadFiles`)."""

    def pwrite(self, path: str, offset: int, data: memoryview) -> None: ...


_buffers = threading.local()
#: bytes of chunk buffers every thread holds, together
_held = 0
_held_lock = threading.Lock()


def _note_held(delta: int) -> None:
    global _held
    with _held_lock:
        _held += delta


def _thread_buffers(size: int) -> list[memoryview]:
    """This thread's chunk buffers, grown to ``size`` bytes each when needed."""
    views: list[memoryview] = getattr(_buffers, "views", [])
    if len(views) < PIPELINE_DEPTH or len(views[0]) < size:
        release_thread_buffers()
        views = [memoryview(bytearray(size)) for _ in range(PIPELINE_DEPTH)]
        _note_held(size * PIPELINE_DEPTH)
        _buffers.views = views
    return views


def release_thread_buffers() -> None:
    """Free this thread's chunk buffers: its download ended, and a pooled thread
    would otherwise keep the largest chunks it ever received."""
    views: list[memoryview] = getattr(_buffers, "views", [])
    if views:
        _note_held(-sum(len(v) for v in views))
        del _buffers.views


def held_buffer_bytes() -> int:
    """Bytes of chunk buffers all threads hold now."""
    with _held_lock:
        return _held


class DataConnection:
    """One TCP connection to a peer's data port, carrying grants one after another.

    :meth:`request` sends a token; :meth:`receive` reads that grant's status
    and bytes. A request may be sent from another thread while the previous
    grant is still being received (pipelining, see
    :mod:`~lanspread_core.wire.dataplane`). After any failure the
    connection is :attr:`broken` and must be closed; :meth:`close` belongs to
    the owner, after every thread using it is done.

    :raises SourceFailed: (from the constructor) no connection.
    """

    def __init__(self, host: str, port: int, *, timeout: float) -> None:
        self.peer = f"{host}:{port}"
        self.timeout = timeout
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
            # blocking where the OS allows it, so MSG_WAITALL fills whole chunks
            set_recv_timeout(self._sock, POLL_INTERVAL)
        except OSError as exc:
            raise SourceFailed(
                f"cannot connect to the data port of {self.peer} ({exc.strerror or exc})"
            ) from None
        self.broken = False
        #: requests sent and not yet received
        self.outstanding = 0
        #: when the connection last finished a grant (or opened)
        self.idle_since = time.monotonic()

    def reusable(self, max_idle: float) -> bool:
        """Whether a new request may go on this connection: not broken, and
        not idle so long that the server may be closing it."""
        if self.broken:
            return False
        return self.outstanding > 0 or time.monotonic() - self.idle_since < max_idle

    def request(self, token: str) -> None:
        """Ask for the grant of ``token``; its bytes follow those asked for before."""
        try:
            self._sock.sendall(encode_request(token))
        except OSError as exc:
            self.broken = True
            raise SourceFailed(
                f"{self.peer} failed taking a request ({exc.strerror or exc})"
            ) from None
        self.outstanding += 1

    def receive(
        self,
        jobs: Sequence[ChunkJob],
        writer: ChunkWriter,
        *,
        cancel: threading.Event,
        on_chunk: Callable[[ChunkJob, bool], None],
        algo: str = ALGO,
    ) -> None:
        """Receive the oldest requested grant: ``jobs`` are its ranges, in order.

        Each chunk is hashed with ``algo``; a match is written through
        ``writer.pwrite`` and reported ``on_chunk(job, True)``, a mismatch
        only reported ``on_chunk(job, False)``. ``on_chunk`` is called in job
        order from a helper thread, and never after this returns: every chunk
        received in full is verified and reported, even when the connection
        then fails. ``cancel`` is looked at between chunks and while waiting
        for bytes; the source may send nothing for ``timeout`` seconds before
        it counts as stalled.

        :raises SourceRefused: the source answered with a refusal.
        :raises SourceFailed: a stall, or the stream ended early.
        :raises Cancelled: ``cancel`` was set.
        """
        stream = _Stream(self._sock, self.peer, cancel, self.timeout)
        ok = False
        try:
            stream.read_status()
            _receive_chunks(stream, jobs, writer, cancel, on_chunk, algo)
            ok = True
        finally:
            self.outstanding -= 1
            self.idle_since = time.monotonic()
            self.broken = self.broken or not ok

    def open_stream(self, *, cancel: threading.Event) -> socket.socket:
        """The socket of the oldest requested grant, a stream-install, past its status.

        A stream-install is always the last grant on its connection, so the
        connection is spent: its frames
        (:mod:`~lanspread_core.wire.streamframes`) are read from the socket
        returned, which keeps its short receive timeout (:data:`POLL_INTERVAL`)
        so the reader can look at ``cancel`` while the sender is silent; the
        owner closes it.

        :raises SourceRefused: the source answered with a refusal.
        :raises SourceFailed: a stall, or the connection ended first.
        :raises Cancelled: ``cancel`` was set.
        """
        self.broken = True  # nothing else may go on this connection
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, STREAM_RCVBUF)
        try:
            _Stream(self._sock, self.peer, cancel, self.timeout).read_status()
        finally:
            self.outstanding -= 1
        return self._sock

    def close(self) -> None:
        self.broken = True
        self._sock.close()

    def __enter__(self) -> DataConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def fetch_ranges(
    host: str,
    port: int,
    token: str,
    jobs: Sequence[ChunkJob],
    writer: ChunkWriter,
    *,
    cancel: threading.Event,
    timeout: float,
    on_chunk: Callable[[ChunkJob, bool], None],
    algo: str = ALGO,
) -> None:
    """Receive one grant on a connection of its own (see :class:`DataConnection`).

    :param timeout: seconds to connect, and the longest the source may send
        nothing before it counts as stalled.
    :raises SourceRefused: the source answered with a refusal.
    :raises SourceFailed: no connection, a stall, or the stream ended early.
    :raises Cancelled: ``cancel`` was set.
    """
    with DataConnection(host, port, timeout=timeout) as conn:
        conn.request(token)
        conn.receive(jobs, writer, cancel=cancel, on_chunk=on_chunk, algo=algo)


def _receive_chunks(
    stream: _Stream,
    jobs: Sequence[ChunkJob],
    writer: ChunkWriter,
    cancel: threading.Event,
    on_chunk: Callable[[ChunkJob, bool], None],
    algo: str,
) -> None:
    verifier = _Verifier(writer, on_chunk, algo, max((j.length for j in jobs), default=0))
    try:
        for job in jobs:
            if cancel.is_set():
                raise Cancelled("the download was cancelled")
            buffer = verifier.buffer()
            stream.fill(buffer[: job.length], partial(_where, job))
            verifier.submit(job, buffer)
    except BaseException:
        verifier.close(reraise=False)
        raise
    verifier.close()


class _Verifier:
    """The helper thread that hashes, writes and reports received chunks in order.

    Buffers circulate: the receiver takes a free one, fills it, submits it;
    the helper verifies it and frees it again. A helper failure (the disk,
    or ``on_chunk`` raising) stops the receiver at its next :meth:`buffer`.
    """

    def __init__(
        self,
        writer: ChunkWriter,
        on_chunk: Callable[[ChunkJob, bool], None],
        algo: str,
        size: int,
    ) -> None:
        self._writer = writer
        self._on_chunk = on_chunk
        self._algo = algo
        self._free: queue.SimpleQueue[memoryview | None] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[tuple[ChunkJob, memoryview] | None]
        self._work = queue.SimpleQueue()
        self._error: BaseException | None = None
        for view in _thread_buffers(size):
            self._free.put(view)
        self._thread = threading.Thread(target=self._run, name="lanspread-verify", daemon=True)
        self._thread.start()

    def buffer(self) -> memoryview:
        """A free buffer; waits while every buffer is being verified."""
        view = self._free.get()
        if view is None:
            assert self._error is not None
            raise self._error
        return view

    def submit(self, job: ChunkJob, buffer: memoryview) -> None:
        """Verify ``job``, whose bytes fill the start of ``buffer``."""
        self._work.put((job, buffer))

    def close(self, *, reraise: bool = True) -> None:
        """Wait until every submitted chunk is verified; raise the helper's error."""
        self._work.put(None)
        self._thread.join()
        if reraise and self._error is not None:
            raise self._error

    def _run(self) -> None:
        try:
            while (item := self._work.get()) is not None:
                job, buffer = item
                chunk = buffer[: job.length]
                ok = hash_chunk(self._algo, chunk) == job.hash
                if ok:
                    self._writer.pwrite(job.path, job.offset, chunk)
                self._on_chunk(job, ok)
                self._free.put(buffer)
        except BaseException as exc:
            self._error = exc
            self._free.put(None)  # wake the receiver


def _where(job: ChunkJob, got: int) -> str:
    return f"chunk {job.index} of {job.path} ({got} of {job.length} bytes)"


class _Stream:
    """Exact reads from a blocking socket that wake every POLL_INTERVAL."""

    def __init__(
        self, sock: socket.socket, peer: str, cancel: threading.Event, timeout: float
    ) -> None:
        self.sock = sock
        self.peer = peer
        self.cancel = cancel
        self.timeout = timeout

    def read_status(self) -> None:
        """Read the grant's status frame: the one reader of it on the receiving side.

        :raises SourceRefused: the status is a refusal (its sentence is kept).
        :raises SourceFailed: no status frame, or a malformed one.
        """
        header = memoryview(bytearray(HEADER.size))
        self.fill(header, lambda got: f"the status frame header ({got} of 4 bytes)")
        (length,) = HEADER.unpack(header)
        if length > STATUS_MAX:
            raise SourceFailed(f"{self.peer} sent a {length}-byte status frame; not a data port")
        body = memoryview(bytearray(length))
        self.fill(body, lambda got: f"the status frame ({got} of {length} bytes)")
        try:
            error = parse_status(bytes(body))
        except WireError as exc:
            raise SourceFailed(f"{self.peer} sent a bad status frame: {exc}") from None
        if error is not None:
            raise SourceRefused(f"{self.peer} refused the transfer: {error}")

    def fill(self, view: memoryview, what: Callable[[int], str]) -> None:
        """Fill ``view`` completely; ``what(got)`` names it in errors."""
        size = len(view)
        got = 0
        last = time.monotonic()
        while got < size:
            try:
                n = self.sock.recv_into(view[got:], size - got, socket.MSG_WAITALL)
            except (BlockingIOError, TimeoutError, InterruptedError):  # nothing this poll
                n = -1
            except OSError as exc:
                raise SourceFailed(
                    f"{self.peer} failed during {what(got)}: {exc.strerror or exc}"
                ) from None
            if n == 0:
                raise SourceFailed(f"{self.peer} closed the connection during {what(got)}")
            now = time.monotonic()
            if n > 0:
                got += n
                last = now
            elif now - last > self.timeout:
                raise SourceFailed(
                    f"{self.peer} sent nothing for {self.timeout:g} s during {what(got)}"
                )
            if got < size and self.cancel.is_set():
                raise Cancelled("the download was cancelled")
