"""The QUIC control plane over loopback, with real identities in temp state dirs."""

from __future__ import annotations

import datetime
import hashlib
import json
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import anyio
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509.oid import NameOID

from lanspread_core.control.client import ControlClient, ControlPool
from lanspread_core.control.errors import ListenError, PeerError, PeerUnreachable
from lanspread_core.control.identity import (
    CERT_FILE,
    IDENTITY_FILE,
    KEY_FILE,
    Identity,
    load_or_create_identity,
    peer_id_of_certificate,
)
from lanspread_core.control.server import ControlEndpoint, Handler, Remote, serve_control
from lanspread_core.errors import LanspreadError
from lanspread_core.library.statedir import StateDir
from lanspread_core.wire.framing import MAX_FRAME
from lanspread_core.wire.messages import (
    PROTO_VER,
    Ack,
    Error,
    GameManifest,
    GetDelta,
    GetGame,
    Goodbye,
    Hello,
    HelloAck,
    LibrarySnapshot,
    Message,
    Ping,
    Pong,
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def server_id(tmp_path: Path) -> Identity:
    return load_or_create_identity(StateDir(tmp_path / "server"))


@pytest.fixture
def client_id(tmp_path: Path) -> Identity:
    return load_or_create_identity(StateDir(tmp_path / "client"))


@asynccontextmanager
async def serving(
    identity: Identity, handler: Handler, **kwargs: Any
) -> AsyncIterator[ControlEndpoint]:
    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(
            partial(serve_control, "127.0.0.1", 0, identity, handler, **kwargs)
        )
        yield endpoint
        tg.cancel_scope.cancel()


@asynccontextmanager
async def session(
    identity: Identity, handler: Handler, **kwargs: Any
) -> AsyncIterator[ControlClient]:
    """A running server and one client connected to it, presenting the
    certificate of the test's ``client_id`` (kept beside the server's)."""
    client_identity = load_or_create_identity(StateDir(identity.cert_path.parent.parent / "client"))
    async with (
        serving(identity, handler, **kwargs) as endpoint,
        await ControlClient.connect("127.0.0.1", endpoint.port, identity=client_identity) as client,
    ):
        yield client


def pinger(identity: Identity) -> Handler:
    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        assert isinstance(msg, Ping)
        return Pong(identity.peer_id, 1)

    return handle


# -- identity -------------------------------------------------------------------


def test_identity_is_created_once_and_stable(tmp_path: Path) -> None:
    state = StateDir(tmp_path / "state")
    first = load_or_create_identity(state)
    again = load_or_create_identity(StateDir(tmp_path / "state"))
    assert first == again
    assert len(first.peer_id) == 32 and int(first.peer_id, 16) >= 0
    assert stat.S_IMODE(first.key_path.stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate(first.cert_path.read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == first.peer_id
    assert load_or_create_identity(StateDir(tmp_path / "other")).peer_id != first.peer_id


def test_corrupt_identity_is_an_error_not_a_new_peer(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    load_or_create_identity(state)
    (tmp_path / IDENTITY_FILE).write_text("{not json")
    with pytest.raises(LanspreadError) as info:
        load_or_create_identity(state)
    assert str(tmp_path / IDENTITY_FILE) in str(info.value)
    assert "delete" in str(info.value) and "\n" not in str(info.value)


def test_damaged_key_names_the_pair_and_a_new_key_is_a_new_peer(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    peer_id = load_or_create_identity(state).peer_id
    (tmp_path / KEY_FILE).write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    with pytest.raises(LanspreadError) as info:
        load_or_create_identity(state)
    assert str(tmp_path / KEY_FILE) in str(info.value)
    assert str(tmp_path / CERT_FILE) in str(info.value)
    assert "new peer id" in str(info.value)
    (tmp_path / KEY_FILE).unlink()
    (tmp_path / CERT_FILE).unlink()
    fresh = load_or_create_identity(state)  # as the message said: a new key, a new id
    assert fresh.peer_id != peer_id and fresh == load_or_create_identity(state)


def test_the_peer_id_is_the_hash_of_the_key(tmp_path: Path) -> None:
    identity = load_or_create_identity(StateDir(tmp_path))
    cert = x509.load_pem_x509_certificate(identity.cert_path.read_bytes())
    der = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    assert identity.peer_id == hashlib.sha256(der).hexdigest()[:32]
    assert peer_id_of_certificate(cert) == identity.peer_id


def test_a_random_id_of_format_1_becomes_the_id_of_its_key(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    identity = load_or_create_identity(state)
    # what a peer of the previous release left: a random id, the key, a cert naming the id
    old_id = "0123456789abcdef0123456789abcdef"
    key = serialization.load_pem_private_key(identity.key_path.read_bytes(), password=None)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, old_id)])
    now = datetime.datetime.now(datetime.UTC)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    identity.cert_path.write_bytes(cert.public_bytes(Encoding.PEM))
    (tmp_path / IDENTITY_FILE).write_text(json.dumps({"format": 1, "peer_id": old_id}))
    migrated = load_or_create_identity(state)
    assert migrated.peer_id == identity.peer_id != old_id  # the key's id, the key kept
    assert json.loads((tmp_path / IDENTITY_FILE).read_text())["format"] == 2
    assert load_or_create_identity(state) == migrated


def test_a_first_start_cut_short_starts_over(tmp_path: Path) -> None:
    state = StateDir(tmp_path)
    first = load_or_create_identity(state)
    (tmp_path / IDENTITY_FILE).unlink()  # crashed before the commit point
    second = load_or_create_identity(state)
    assert second.peer_id != first.peer_id
    assert load_or_create_identity(state) == second


def test_key_of_another_identity_is_refused(tmp_path: Path) -> None:
    a = load_or_create_identity(StateDir(tmp_path / "a"))
    b = load_or_create_identity(StateDir(tmp_path / "b"))
    b.key_path.write_bytes(a.key_path.read_bytes())
    with pytest.raises(LanspreadError, match="does not match"):
        load_or_create_identity(StateDir(tmp_path / "b"))


# -- requests -------------------------------------------------------------------


@pytest.mark.anyio
async def test_hello_and_helloack(server_id: Identity, client_id: Identity) -> None:
    seen: list[tuple[Message, tuple[str, int]]] = []

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        seen.append((msg, remote))
        assert isinstance(msg, Hello)
        return HelloAck(server_id.peer_id, PROTO_VER, 9, "dig", ("x",), 7100, "server", 7101)

    hello = Hello(client_id.peer_id, PROTO_VER, 0, "", (), 7000, "client", 7001)
    async with serving(server_id, handle) as endpoint:
        assert endpoint.port > 0
        async with await ControlClient.connect(
            "127.0.0.1", endpoint.port, identity=client_id
        ) as client:
            ack = await client.request(hello, timeout=5)
    assert isinstance(ack, HelloAck) and ack.peer_id == server_id.peer_id and ack.library_rev == 9
    assert seen[0][0] == hello
    assert seen[0][1][0] == "127.0.0.1" and seen[0][1][1] > 0
    assert seen[0][1] == Remote("127.0.0.1", seen[0][1][1], client_id.peer_id)  # proven
    assert client.peer_id == server_id.peer_id  # and the server's key, to the client


@pytest.mark.anyio
async def test_a_request_acts_only_for_the_peer_whose_key_the_connection_proved(
    server_id: Identity, client_id: Identity, tmp_path: Path
) -> None:
    victim = load_or_create_identity(StateDir(tmp_path / "victim"))
    handled: list[Message] = []

    async def handle(msg: Message, remote: Remote) -> Message:
        handled.append(msg)
        return Ack() if isinstance(msg, Goodbye) else Pong(server_id.peer_id, 1)

    async with serving(server_id, handle) as endpoint:
        async with await ControlClient.connect(
            "127.0.0.1", endpoint.port, identity=client_id
        ) as client:
            for forged in (Goodbye(victim.peer_id), Ping(victim.peer_id, 0)):
                with pytest.raises(PeerError) as refused:
                    await client.request(forged, timeout=5)
                assert refused.value.code == "identity"
                assert f"not the peer {victim.peer_id[:8]}" in str(refused.value)
            assert isinstance(await client.request(Goodbye(client_id.peer_id), timeout=5), Ack)
        # a client that presents no certificate can act for nobody
        async with await ControlClient.connect("127.0.0.1", endpoint.port) as anonymous:
            with pytest.raises(PeerError, match="proved no key") as refused:
                await anonymous.request(Ping(client_id.peer_id, 0), timeout=5)
            assert refused.value.code == "identity"
    assert handled == [Goodbye(client_id.peer_id)]  # the handler never saw a forged one


@pytest.mark.anyio
async def test_a_server_claiming_another_peer_id_is_not_believed(
    server_id: Identity, client_id: Identity, tmp_path: Path
) -> None:
    victim = load_or_create_identity(StateDir(tmp_path / "victim"))

    async def impostor(msg: Message, remote: Remote) -> Message:
        return HelloAck(victim.peer_id, PROTO_VER, 0, "", (), 1, "victim", 1)

    hello = Hello(client_id.peer_id, PROTO_VER, 0, "", (), 7000, "client", 7001)
    pool = ControlPool(identity=client_id)
    try:
        async with serving(server_id, impostor) as endpoint:
            with pytest.raises(PeerError, match="its key proves") as refused:
                await pool.request("127.0.0.1", endpoint.port, hello, timeout=5)
            assert refused.value.code == "identity"
            # asking a known peer at an address where another key answers
            ping = Ping(client_id.peer_id, 0)
            with pytest.raises(PeerError, match="not asking it") as refused:
                await pool.request("127.0.0.1", endpoint.port, ping, expect=victim.peer_id)
            assert refused.value.code == "identity"
    finally:
        await pool.aclose()


@pytest.mark.anyio
async def test_concurrent_requests_on_one_connection(server_id: Identity, client_id: Identity):
    running = 0
    most = 0

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        nonlocal running, most
        assert isinstance(msg, GetGame)
        running += 1
        most = max(most, running)
        await anyio.sleep(0.05)
        running -= 1
        return GameManifest(msg.game_id, "1", {"n": int(msg.game_id)})

    replies: dict[int, Message] = {}
    async with session(server_id, handle) as client:

        async def one(i: int) -> None:
            replies[i] = await client.request(GetGame(client_id.peer_id, str(i)), timeout=5)

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(one, i)
    assert all(isinstance(r, GameManifest) and r.manifest == {"n": i} for i, r in replies.items())
    assert len(replies) == 20
    assert most > 1  # handled side by side, not one after another


@pytest.mark.anyio
async def test_handler_failure_becomes_an_error_and_the_server_serves_on(
    server_id: Identity, client_id: Identity, caplog: pytest.LogCaptureFixture
) -> None:
    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        if isinstance(msg, GetGame):
            if msg.game_id == "boom":
                raise RuntimeError("handler bug")
            if msg.game_id == "wrong":
                return Pong(server_id.peer_id, 0)  # not an answer to GetGame
            return Error.of("not_found", f"no game {msg.game_id!r}")
        return Pong(server_id.peer_id, 1)

    async with session(server_id, handle) as client:
        with pytest.raises(PeerError) as info:
            await client.request(GetGame(client_id.peer_id, "boom"), timeout=5)
        assert info.value.code == "internal"
        assert "handler bug" in caplog.text
        with pytest.raises(PeerError) as info:
            await client.request(GetGame(client_id.peer_id, "wrong"), timeout=5)
        assert info.value.code == "internal"
        with pytest.raises(PeerError) as info:
            await client.request(GetGame(client_id.peer_id, "x"), timeout=5)
        assert info.value.code == "not_found" and "no game 'x'" in str(info.value)
        assert isinstance(await client.request(Ping(client_id.peer_id, 0)), Pong)
        async with await ControlClient.connect(*client.address, identity=client_id) as other:
            assert isinstance(await other.request(Ping(client_id.peer_id, 0)), Pong)


@pytest.mark.anyio
async def test_delta_may_be_answered_with_a_snapshot(server_id: Identity, client_id: Identity):
    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        return LibrarySnapshot(server_id.peer_id, 3, ())

    async with session(server_id, handle) as client:
        reply = await client.request(GetDelta(client_id.peer_id, 1), timeout=5)
    assert isinstance(reply, LibrarySnapshot)


@pytest.mark.anyio
async def test_large_reply_and_too_large_reply(server_id: Identity, client_id: Identity):
    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        assert isinstance(msg, GetGame)
        size = MAX_FRAME + 1 if msg.game_id == "huge" else 1_000_000
        return GameManifest(msg.game_id, "1", {"blob": "x" * size})

    async with session(server_id, handle) as client:
        reply = await client.request(GetGame(client_id.peer_id, "big"), timeout=10)
        assert isinstance(reply, GameManifest) and len(reply.manifest["blob"]) == 1_000_000
        with pytest.raises(PeerError) as info:
            await client.request(GetGame(client_id.peer_id, "huge"), timeout=10)
        assert info.value.code == "too_large"


@pytest.mark.anyio
async def test_timeout_cancels_the_handler(server_id: Identity, client_id: Identity) -> None:
    cancelled = anyio.Event()

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        if isinstance(msg, GetGame):
            try:
                await anyio.sleep_forever()
            finally:
                cancelled.set()
        return Pong(server_id.peer_id, 1)

    async with session(server_id, handle) as client:
        with pytest.raises(PeerUnreachable, match="did not answer GetGame"):
            await client.request(GetGame(client_id.peer_id, "slow"), timeout=0.2)
        with anyio.fail_after(5):
            await cancelled.wait()  # the client's STOP_SENDING reached the handler
        assert isinstance(await client.request(Ping(client_id.peer_id, 0)), Pong)


@pytest.mark.anyio
async def test_busy_when_too_many_requests_are_in_flight(server_id: Identity, client_id: Identity):
    release = anyio.Event()

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        await release.wait()
        return Pong(server_id.peer_id, 1)

    async with (
        session(server_id, handle, max_streams_per_connection=2) as client,
        anyio.create_task_group() as tg,
    ):
        for _ in range(2):
            tg.start_soon(partial(client.request, Ping(client_id.peer_id, 0), timeout=5))
        await anyio.sleep(0.1)
        with pytest.raises(PeerError) as info:
            await client.request(Ping(client_id.peer_id, 0), timeout=5)
        assert info.value.code == "busy"
        release.set()


@pytest.mark.anyio
async def test_server_shutdown_fails_pending_requests(server_id: Identity, client_id: Identity):
    handler_cancelled = anyio.Event()

    async def handle(msg: Message, remote: tuple[str, int]) -> Message:
        try:
            await anyio.sleep_forever()
        finally:
            handler_cancelled.set()
        raise AssertionError("unreachable")

    failure: list[BaseException] = []

    async def ask(client: ControlClient) -> None:
        with pytest.raises(PeerUnreachable) as info:
            await client.request(Ping(client_id.peer_id, 0), timeout=5)
        failure.append(info.value)

    with anyio.fail_after(5):
        # The client's task group outlives the server's.
        async with anyio.create_task_group() as client_tg, anyio.create_task_group() as server_tg:
            endpoint = await server_tg.start(
                partial(serve_control, "127.0.0.1", 0, server_id, handle)
            )
            client = await ControlClient.connect("127.0.0.1", endpoint.port, identity=client_id)
            client_tg.start_soon(ask, client)
            await anyio.sleep(0.1)
            server_tg.cancel_scope.cancel()  # stop the server while a request is open
    assert handler_cancelled.is_set()
    assert "closed" in str(failure[0])
    assert client.is_closed
    await client.close()


@pytest.mark.anyio
async def test_nobody_listening_is_unreachable() -> None:
    with anyio.fail_after(5):
        with pytest.raises(PeerUnreachable, match="did not answer"):
            await ControlClient.connect("127.0.0.1", 9, timeout=0.3)


@pytest.mark.anyio
async def test_port_in_use_is_one_clear_error(server_id: Identity) -> None:
    async with serving(server_id, pinger(server_id)) as endpoint:
        with pytest.raises(ListenError, match=f"UDP 127.0.0.1 port {endpoint.port}"):
            await serve_control("127.0.0.1", endpoint.port, server_id, pinger(server_id))


@pytest.mark.anyio
async def test_idle_timeout_closes_a_silent_connection_but_not_a_pinged_one(
    server_id: Identity, client_id: Identity
) -> None:
    async with serving(server_id, pinger(server_id)) as endpoint:
        quiet = await ControlClient.connect(
            "127.0.0.1", endpoint.port, idle_timeout=0.5, identity=client_id
        )
        pinged = await ControlClient.connect(
            "127.0.0.1", endpoint.port, idle_timeout=0.5, identity=client_id
        )
        for _ in range(8):
            await pinged.request(Ping(client_id.peer_id, 0), timeout=1)
            await anyio.sleep(0.15)
        assert quiet.is_closed and not pinged.is_closed
        with pytest.raises(PeerUnreachable, match="closed"):
            await quiet.request(Ping(client_id.peer_id, 0))
        await quiet.close()
        await pinged.close()


@pytest.mark.anyio
async def test_pool_reuses_and_reopens(server_id: Identity, client_id: Identity) -> None:
    pool = ControlPool(identity=client_id)
    async with serving(server_id, pinger(server_id)) as endpoint:
        ping = Ping(client_id.peer_id, 0)
        assert isinstance(await pool.request("127.0.0.1", endpoint.port, ping), Pong)
        first = await pool.get("127.0.0.1", endpoint.port)
        assert await pool.get("127.0.0.1", endpoint.port) is first
        await first.close()  # as an idle timeout would
        assert isinstance(await pool.request("127.0.0.1", endpoint.port, ping), Pong)
        assert await pool.get("127.0.0.1", endpoint.port) is not first
        await pool.aclose()
        with pytest.raises(PeerUnreachable):
            await pool.get("127.0.0.1", endpoint.port)
