"""Stream-install frames of the wrong shape end the stream with StreamError.

A hostile sender on a real TCP socket sends frames whose JSON is valid but of
the wrong type (a number where a string belongs, an array for an object), or
nested too deeply to read. The real receiver raises :class:`StreamError` for
each, never another exception, so ``stream_install_body`` tries the next peer
(it retries on any ``LanspreadError`` except a few of its own).
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from pathlib import Path

import pytest

from lanspread_core.dataplane.link import DataLink
from lanspread_core.transfer.streamrecv import receive_stream
from lanspread_core.wire.dataplane import encode_status
from lanspread_core.wire.streamframes import (
    END,
    ENTRIES,
    ERROR,
    FILE_END,
    HEADER,
    StreamError,
    frame,
    json_frame,
)

GOOD = {"path": "a.txt", "kind": "file", "size": 1, "crc32": f"{zlib.crc32(b'x'):08x}"}
LISTING = json_frame(ENTRIES, {"format": "hostile", "entries": [GOOD]})
DEEP = b"[" * 50_000 + b"]" * 50_000


def entries(*items: object) -> bytes:
    return json_frame(ENTRIES, {"format": "hostile", "entries": list(items)})


CASES: dict[str, list[bytes]] = {
    "an entry list that is an array": [json_frame(ENTRIES, [GOOD])],
    "entries that are an object": [json_frame(ENTRIES, {"entries": {"a.txt": GOOD}})],
    "entries that are a string": [json_frame(ENTRIES, {"entries": "a.txt"})],
    "an entry that is an array": [entries(["a.txt", "file", 1])],
    "a path that is a number": [entries({**GOOD, "path": 7})],
    "a size that is a string": [entries({**GOOD, "size": "1"})],
    "a size that is a boolean": [entries({**GOOD, "size": True})],
    "a kind that is an array": [entries({**GOOD, "kind": ["file"]})],
    "a crc32 that is a number": [entries({**GOOD, "crc32": 12345678})],
    "an entry list nested too deeply": [b"".join(frame(ENTRIES, DEEP))],
    "a header that is an array": [LISTING, json_frame(HEADER, [GOOD])],
    "a header whose size is an object": [LISTING, json_frame(HEADER, {**GOOD, "size": {}})],
    "a header nested too deeply": [LISTING, b"".join(frame(HEADER, DEEP))],
    "a file end that is an array": [
        LISTING,
        json_frame(HEADER, GOOD),
        b"".join(frame(b"D", b"x")),
        json_frame(FILE_END, ["00000000"]),
    ],
    "a file end whose crc32 is a number": [
        LISTING,
        json_frame(HEADER, GOOD),
        b"".join(frame(b"D", b"x")),
        json_frame(FILE_END, {"crc32": 8}),
    ],
    "an error frame that is an array": [LISTING, json_frame(ERROR, ["boom"])],
}


def raw_sender(frames: list[bytes]) -> tuple[int, threading.Thread]:
    """A data port that grants any request, then sends ``frames`` as they are."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                length = int.from_bytes(conn.recv(4, socket.MSG_WAITALL), "big")
                conn.recv(length, socket.MSG_WAITALL)
                conn.sendall(encode_status())
                with contextlib.suppress(OSError):  # the receiver hangs up on us
                    for data in frames:
                        conn.sendall(data)
                    conn.sendall(json_frame(END, {}))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


def receive(frames: list[bytes], staging: Path) -> None:
    staging.mkdir()
    port, thread = raw_sender(frames)
    try:
        with DataLink("127.0.0.1", timeout=10) as link:
            conn = link.request(port, "0" * 32, pipelined=False)
            receive_stream(conn, staging, threading.Event(), lambda _: None, lambda _: None)
    finally:
        thread.join(timeout=10)


@pytest.mark.parametrize("frames", CASES.values(), ids=CASES.keys())
def test_a_frame_of_the_wrong_type_is_a_stream_error(frames: list[bytes], tmp_path: Path) -> None:
    with pytest.raises(StreamError):
        receive(frames, tmp_path / "staging")


def test_the_well_formed_stream_is_received(tmp_path: Path) -> None:
    """The same sender with honest frames: the cases above fail for their one fault."""
    frames = [
        LISTING,
        json_frame(HEADER, GOOD),
        b"".join(frame(b"D", b"x")),
        json_frame(FILE_END, {"crc32": GOOD["crc32"]}),
    ]
    receive(frames, tmp_path / "staging")
    assert (tmp_path / "staging" / "a.txt").read_bytes() == b"x"
