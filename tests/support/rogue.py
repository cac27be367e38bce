"""Rogue clients written against docs/protocol.md, for the attack suite.

* :class:`RogueControl`: a raw aioquic client speaking the control plane's
  framing (a 4-byte big-endian length, then a JSON object with a ``type``),
  presenting a certificate of its own so its requests may name its id. It
  asks for grants, and it opens streams whose frames it never finishes.
* Raw TCP clients for the data plane: a receiver that asks for its grant
  and then reads 64 KiB every 20 s, and connections that never send a
  request at all.

Each binds to a source address of its own on loopback (``127.0.0.x``), as a
second machine on the LAN would have one.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import struct
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import QuicEvent, StopSendingReceived, StreamDataReceived, StreamReset

from lanspread_core.control.identity import Identity, load_or_create_identity
from lanspread_core.library.statedir import StateDir

ROGUE_HOST = "127.0.0.9"
_HEAD = struct.Struct(">I")


def frame(obj: dict[str, Any]) -> bytes:
    body = json.dumps(obj).encode()
    return _HEAD.pack(len(body)) + body


def rogue_identity(state: Path) -> Identity:
    return load_or_create_identity(StateDir(state))


class _Protocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.replies: dict[int, tuple[bytearray, asyncio.Future[bytes]]] = {}
        #: streams the server stopped or reset (it refused to hold them)
        self.stopped: set[int] = set()
        #: what the server answered on streams that were not requests of ours
        self.refusals: dict[int, bytearray] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived):
            entry = self.replies.get(event.stream_id)
            if entry is not None:
                entry[0].extend(event.data)
                if event.end_stream and not entry[1].done():
                    entry[1].set_result(bytes(entry[0]))
            else:
                self.refusals.setdefault(event.stream_id, bytearray()).extend(event.data)
        elif isinstance(event, StreamReset | StopSendingReceived):
            self.stopped.add(event.stream_id)
            entry = self.replies.get(event.stream_id)
            if entry is not None and not entry[1].done():
                entry[1].set_exception(ConnectionResetError("stream stopped"))


class RogueControl:
    """One QUIC connection to a peer's control port."""

    def __init__(self, protocol: _Protocol, identity: Identity) -> None:
        self.protocol = protocol
        self.peer_id = identity.peer_id

    async def request(self, obj: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        quic = self.protocol._quic
        stream_id = quic.get_next_available_stream_id()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.protocol.replies[stream_id] = (bytearray(), fut)
        quic.send_stream_data(stream_id, frame(obj), end_stream=True)
        self.protocol.transmit()
        raw = await asyncio.wait_for(fut, timeout)
        reply: dict[str, Any] = json.loads(raw[4:])
        return reply

    async def grant(self, game_id: str, ranges: list[tuple[str, int, int]]) -> dict[str, Any]:
        """``OpenTransfer`` for ``ranges`` (path, offset, length): the reply."""
        return await self.request(
            {
                "type": "OpenTransfer",
                "peer_id": self.peer_id,
                "game_id": game_id,
                "ranges": [{"path": p, "offset": o, "length": n} for p, o, n in ranges],
            }
        )

    def start_unfinished(self, streams: int, declared: int, send: int) -> list[int]:
        """Open ``streams`` request streams, each declaring a frame of
        ``declared`` bytes and sending ``send`` bytes of it, never the end."""
        quic = self.protocol._quic
        ids = []
        for _ in range(streams):
            stream_id = quic.get_next_available_stream_id()
            quic.send_stream_data(stream_id, _HEAD.pack(declared) + b"{" * (send - 4))
            ids.append(stream_id)
        self.protocol.transmit()
        return ids

    def refusal_messages(self) -> list[str]:
        """The Error messages the server answered unfinished streams with."""
        out = []
        for raw in self.protocol.refusals.values():
            try:
                out.append(str(json.loads(bytes(raw[4:])).get("message", "")))
            except ValueError:
                continue
        return out

    def unsent(self) -> int:
        """Bytes the connection still has to send (0: all sent or dropped)."""
        return sum(
            max(0, s.sender._buffer_stop - s.sender._buffer_start)
            for s in self.protocol._quic._streams.values()
            if s.stream_id not in self.protocol.stopped
        )


@asynccontextmanager
async def rogue_control(
    identity: Identity, host: str, port: int, *, source: str = ROGUE_HOST, timeout: float = 10
) -> AsyncIterator[RogueControl]:
    config = QuicConfiguration(
        alpn_protocols=["lanspread/1"], is_client=True, verify_mode=ssl.CERT_NONE
    )
    config.load_cert_chain(identity.cert_path, identity.key_path)
    config.max_stream_data = config.max_data = 64 << 20
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((source, 0))
    transport, protocol = await loop.create_datagram_endpoint(
        lambda: _Protocol(QuicConnection(configuration=config)), sock=sock
    )
    try:
        protocol.connect((host, port))
        await asyncio.wait_for(protocol.wait_connected(), timeout)
        yield RogueControl(protocol, identity)
    finally:
        protocol.close()
        transport.close()


def data_connect(host: str, port: int, *, source: str = ROGUE_HOST) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.bind((source, 0))
    sock.connect((host, port))
    return sock


def slow_reader(
    host: str,
    port: int,
    token: str,
    stop: Callable[[], bool],
    served: Callable[[], None] = lambda: None,
) -> int:
    """Ask for ``token``'s grant, then read 64 KiB every 20 s until ``stop()``
    or the sender gives up; the bytes read (blocking: run it in a thread).
    ``served()`` is called once the first bytes came: the sender holds a slot."""
    got = 0
    with data_connect(host, port) as sock:
        body = json.dumps({"token": token}).encode()
        sock.sendall(_HEAD.pack(len(body)) + body)
        sock.settimeout(5)
        next_read = time.monotonic()
        while not stop():
            if time.monotonic() < next_read:
                time.sleep(0.2)
                continue
            next_read = time.monotonic() + 20
            try:
                data = sock.recv(64 * 1024)
            except TimeoutError:
                continue
            except OSError:
                return got
            if not data:
                return got
            if not got:
                served()
            got += len(data)
    return got
