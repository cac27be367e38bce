"""Garbage on a real QUIC connection never hurts the server or other connections.

A running control server gets random bytes, truncated frames, frames over the
cap, wrong field types and several frames on one stream, as raw stream data on
one long-lived connection. After each input: a frame the server could judge
(the stream was ended, or the header was over the cap) got exactly one reply
frame holding a valid message; the same connection still answers a Ping on a
new stream; a second, independent connection gets a correct Pong; and the
server task is still running.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc
import pytest
from aioquic.asyncio.client import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.quic.events import QuicEvent, StreamDataReceived, StreamReset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lanspread_core.control.client import ControlClient
from lanspread_core.control.config import client_configuration
from lanspread_core.control.identity import Identity, load_or_create_identity
from lanspread_core.control.server import ControlEndpoint, serve_control
from lanspread_core.library.statedir import StateDir
from lanspread_core.wire.framing import MAX_FRAME, FrameDecoder, dumps
from lanspread_core.wire.messages import (
    MESSAGES,
    Error,
    GetGame,
    Hello,
    Message,
    Ping,
    Pong,
    encode_message,
    parse_message,
)
from lanspread_fixture.gamesets import create_set
from support.data import TEST_PEER_ID, fixed_identity
from support.peerproc import PeerProc

PID = TEST_PEER_ID  # what this test client proves with its certificate
# "identity": a well-formed request that names a peer id this client did not prove
CODES = {"malformed", "too_large", "unknown_type", "not_a_request", "identity"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class _Stream:
    data: bytearray = field(default_factory=bytearray)
    done: anyio.Event = field(default_factory=anyio.Event)


class RawClient(QuicConnectionProtocol):
    """Writes arbitrary bytes on new streams and collects whatever comes back."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.streams: dict[int, _Stream] = {}

    def send(self, data: bytes, end_stream: bool) -> int:
        stream_id = self._quic.get_next_available_stream_id()
        self.streams[stream_id] = _Stream()
        self._quic.send_stream_data(stream_id, data, end_stream=end_stream)
        self.transmit()
        return stream_id

    async def reply(self, stream_id: int, timeout: float = 5) -> bytes:
        stream = self.streams[stream_id]
        with anyio.fail_after(timeout):
            await stream.done.wait()
        del self.streams[stream_id]
        return bytes(stream.data)

    def abandon(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self._quic.reset_stream(stream_id, 2)
        with contextlib.suppress(ValueError):  # the server may have finished it already
            self._quic.stop_stream(stream_id, 2)
        self.transmit()

    def quic_event_received(self, event: QuicEvent) -> None:
        stream = self.streams.get(getattr(event, "stream_id", -1))
        if stream is None:
            return
        if isinstance(event, StreamDataReceived):
            stream.data += event.data
            if event.end_stream:
                stream.done.set()
        elif isinstance(event, StreamReset):
            stream.done.set()


@dataclass
class Env:
    identity: Identity
    endpoint: ControlEndpoint
    raw: RawClient
    tg: anyio.abc.TaskGroup
    stopped: bool = False


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    identity = load_or_create_identity(StateDir(tmp_path))

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        if isinstance(msg, Ping):
            return Pong(identity.peer_id, 42)
        return Error.of("unsupported", f"this test server only answers Ping, not {msg.TYPE}")

    async with anyio.create_task_group() as tg:
        holder: list[Env] = []

        async def run_server(*, task_status: anyio.abc.TaskStatus[ControlEndpoint]) -> None:
            try:
                await serve_control("127.0.0.1", 0, identity, handle, task_status=task_status)
            finally:
                if holder:
                    holder[0].stopped = True

        endpoint = await tg.start(run_server)
        async with connect(
            "127.0.0.1",
            endpoint.port,
            configuration=client_configuration("127.0.0.1", fixed_identity()),
            create_protocol=RawClient,
        ) as raw:
            assert isinstance(raw, RawClient)
            holder.append(Env(identity, endpoint, raw, tg))
            yield holder[0]
        tg.cancel_scope.cancel()


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


SAMPLE_REQUESTS = [
    Ping(PID, 1),
    GetGame(PID, "quake"),
    Hello(PID, 1, 0, "", ("a",), 1, "n", 2),
]
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=8,
)


@st.composite
def truncated(draw: st.DrawFn) -> bytes:
    data = encode_message(draw(st.sampled_from(SAMPLE_REQUESTS)))
    return data[: draw(st.integers(0, len(data) - 1))]


@st.composite
def wrong_field(draw: st.DrawFn) -> bytes:
    obj = draw(st.sampled_from(SAMPLE_REQUESTS)).to_json()
    key = draw(st.sampled_from(sorted(obj)))
    obj[key] = draw(json_values)
    return frame(dumps(obj))


@st.composite
def huge_length(draw: st.DrawFn) -> bytes:
    length = draw(st.integers(MAX_FRAME + 1, 2**32 - 1))
    return struct.pack(">I", length) + draw(st.binary(max_size=64))


random_objects = st.dictionaries(
    st.sampled_from(["type", "peer_id", "library_rev", "game_id"]) | st.text(max_size=6),
    st.sampled_from(sorted(MESSAGES)) | json_values,
    max_size=5,
).map(lambda obj: frame(dumps(obj)))

inputs = st.tuples(
    st.one_of(
        st.binary(max_size=2000),
        truncated(),
        wrong_field(),
        huge_length(),
        random_objects,
        st.lists(st.sampled_from(SAMPLE_REQUESTS).map(encode_message), min_size=2, max_size=3).map(
            b"".join
        ),
        st.sampled_from(SAMPLE_REQUESTS).map(encode_message),
    ),
    st.booleans(),  # end the stream after the data?
)


def declares_too_much(data: bytes) -> bool:
    return len(data) >= 4 and struct.unpack(">I", data[:4])[0] > MAX_FRAME


async def ping(raw: RawClient, peer_id: str) -> None:
    reply = await raw.reply(raw.send(encode_message(Ping(PID, 0)), end_stream=True))
    pong = parse_message(reply[4:])
    assert pong == Pong(peer_id, 42)


@pytest.mark.anyio
@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=inputs)
async def test_garbage_never_hurts_the_server(env: Env, case: tuple[bytes, bool]) -> None:
    data, end_stream = case
    stream_id = env.raw.send(data, end_stream)
    if end_stream or declares_too_much(data):
        reply = await env.raw.reply(stream_id)
        (payload,) = FrameDecoder().feed_raw(reply)  # exactly one frame
        answer = parse_message(payload)
        if isinstance(answer, Error):
            assert answer.code in CODES | {"unsupported"}, answer
            if declares_too_much(data):
                assert answer.code == "too_large"
        else:
            assert answer == Pong(env.identity.peer_id, 42)
    else:
        env.raw.abandon(stream_id)  # a client giving up on a request it never finished

    await ping(env.raw, env.identity.peer_id)  # the same connection still works
    with anyio.fail_after(5):
        other = await ControlClient.connect(
            "127.0.0.1", env.endpoint.port, identity=fixed_identity()
        )
        assert await other.request(Ping(PID, 0)) == Pong(env.identity.peer_id, 42)
    env.tg.start_soon(other.close)  # closing waits for QUIC's close handshake; not our business
    assert not env.stopped


@pytest.mark.anyio
async def test_many_unfinished_streams_only_busy_their_own_connection(env: Env) -> None:
    # Start more requests than a connection may have in flight and never finish them.
    held = [env.raw.send(b"\x00\x00\x00\x10{", end_stream=False) for _ in range(40)]
    await anyio.sleep(0.1)
    refused = env.raw.send(encode_message(Ping(PID, 0)), end_stream=True)
    error = parse_message((await env.raw.reply(refused))[4:])
    assert isinstance(error, Error) and error.code == "busy"
    async with await ControlClient.connect(
        "127.0.0.1", env.endpoint.port, identity=fixed_identity()
    ) as other:
        assert isinstance(await other.request(Ping(PID, 0)), Pong)
    for stream_id in held:
        env.raw.abandon(stream_id)
    await anyio.sleep(0.1)
    await ping(env.raw, env.identity.peer_id)  # slots come back once the client gives up


@pytest.fixture(scope="module")
def real_peer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PeerProc]:
    """A whole ``lanspread peer`` process, with games, answering the real handler."""
    work = tmp_path_factory.mktemp("fuzzed-peer")
    create_set(work / "games", "alpha", catalog=work / "catalog.json")
    with PeerProc(
        work,
        args=["--listen", "127.0.0.1:0", "--discovery", "static"],
        catalog=work / "catalog.json",
    ) as peer:
        yield peer


@pytest.mark.anyio
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=inputs)
async def test_garbage_never_hurts_a_real_peer(real_peer: PeerProc, case: tuple[bytes, bool]):
    port = int(real_peer.control.rsplit(":", 1)[1])
    data, end_stream = case
    async with connect(
        "127.0.0.1",
        port,
        configuration=client_configuration("127.0.0.1", fixed_identity()),
        create_protocol=RawClient,
    ) as raw:
        assert isinstance(raw, RawClient)
        stream_id = raw.send(data, end_stream)
        if end_stream or declares_too_much(data):
            reply = await raw.reply(stream_id)
            (payload,) = FrameDecoder().feed_raw(reply)
            parse_message(payload)  # always a well-formed answer, an Error or a reply
        else:
            raw.abandon(stream_id)
        with anyio.fail_after(5):
            other = await ControlClient.connect("127.0.0.1", port, identity=fixed_identity())
            pong = await other.request(Ping(PID, 0))
            await other.close()
    assert isinstance(pong, Pong) and pong.peer_id == real_peer.peer_id
    assert real_peer.proc.poll() is None
    assert real_peer.ok("status")["peer_id"] == real_peer.peer_id
