"""A stream-install reader facing a silent sender: a stop ends the wait, and
silence past the stall timeout fails the stream (so the next peer is tried).

Real sockets; the reader's socket has the data plane's short receive timeout,
as :meth:`DataConnection.open_stream` leaves it.
"""

from __future__ import annotations

import socket
import threading

import pytest

from lanspread_core.dataplane.client import POLL_INTERVAL
from lanspread_core.errors import Cancelled
from lanspread_core.system.portable import set_recv_timeout
from lanspread_core.wire.streamframes import FrameReader, StreamError


def _silent_pair() -> tuple[socket.socket, socket.socket]:
    reader, sender = socket.socketpair()
    set_recv_timeout(reader, POLL_INTERVAL)
    sender.sendall(b"E\x00\x00")  # half a frame header, then nothing
    return reader, sender


def _read(reader: FrameReader, errors: list[BaseException]) -> None:
    try:
        reader.next()
    except BaseException as exc:
        errors.append(exc)


def test_a_stop_ends_the_wait_for_a_silent_sender() -> None:
    sock, sender = _silent_pair()
    cancel = threading.Event()
    errors: list[BaseException] = []
    # a stall timeout far away: only the cancel flag can end this read
    thread = threading.Thread(
        target=_read, args=(FrameReader(sock, cancel=cancel, timeout=600), errors)
    )
    with sock, sender:
        thread.start()
        cancel.set()
        thread.join(60)  # a hang becomes a failure
    assert not thread.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], Cancelled), errors


def test_a_sender_silent_past_the_stall_timeout_fails_the_stream() -> None:
    sock, sender = _silent_pair()
    with sock, sender, pytest.raises(StreamError, match="sent nothing for 0.5 s"):
        FrameReader(sock, timeout=0.5).next()
