"""The wire format: frames, messages and their validation."""

from __future__ import annotations

import dataclasses
import json
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lanspread_core.wire.errors import (
    FrameTooLarge,
    MalformedMessage,
    UnknownMessageType,
    WireError,
)
from lanspread_core.wire.framing import MAX_FRAME, FrameDecoder, dumps, encode_frame
from lanspread_core.wire.messages import (
    MAX_TRANSFER_RANGES,
    MESSAGES,
    PROTO_VER,
    Ack,
    ByteRange,
    Error,
    GameInfo,
    GameManifest,
    GetDelta,
    GetGame,
    GetPartyCatalog,
    GetSnapshot,
    Goodbye,
    Hello,
    HelloAck,
    LibraryDelta,
    LibrarySnapshot,
    Message,
    OpenTransfer,
    PartyCatalog,
    Ping,
    Pong,
    StreamInstall,
    TransferGrant,
    decode_message,
    encode_message,
    parse_message,
)

PID = "0123456789abcdef0123456789abcdef"
GAME = GameInfo(id="quake", version="1.09", size=123_456, manifest_hash="ab" * 32)
TOKEN = "0f" * 16
RANGES = (ByteRange("pak0.eti", 0, 4 << 20), ByteRange("sub/dir/pak1.eti", 4 << 20, 17))

SAMPLES: dict[str, Message] = {
    m.TYPE: m
    for m in [
        Hello(PID, PROTO_VER, 3, "digest", ("stream-install",), 7000, "alice's pc", 7001),
        HelloAck(PID, PROTO_VER, 0, "", (), 7000, "bob", 7001),
        GetSnapshot(PID),
        LibrarySnapshot(PID, 5, (GAME, dataclasses.replace(GAME, id="doom"))),
        GetDelta(PID, 4),
        LibraryDelta(PID, 4, 5, (GAME,), (), ("doom",)),
        GetGame(PID, "quake"),
        GameManifest("quake", "1.09", {"algo": "blake3", "files": [{"path": "a", "size": 1}]}),
        Ping(PID, 5),
        Pong(PID, 5, "d", "lsparty1-" + "A" * 43, 7),
        GetPartyCatalog(PID),
        PartyCatalog({"format": "lanspread-party-catalog/1", "seq": 7, "catalog": {"games": []}}),
        Goodbye(PID),
        OpenTransfer(PID, "quake", RANGES),
        StreamInstall(PID, "quake"),
        TransferGrant(TOKEN, 7002, 30.0),
        TransferGrant(TOKEN, 7002, 30.0, (1, 3), (0,)),
        Ack(),
        Error("not_found", "no game 'x' here"),
    ]
}


def frame(payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + payload


def one_sentence(text: str) -> bool:
    return bool(text) and "\n" not in text and ". " not in text and len(text) < 200


# -- framing ------------------------------------------------------------------


def test_frame_round_trip() -> None:
    obj = {"type": "Ping", "peer_id": PID, "library_rev": 1, "name": "ünï"}
    data = encode_frame(obj)
    assert struct.unpack(">I", data[:4])[0] == len(data) - 4
    assert FrameDecoder().feed(data) == [obj]


def test_feed_byte_by_byte() -> None:
    messages = list(SAMPLES.values())
    stream = b"".join(encode_message(m) for m in messages)
    decoder = FrameDecoder()
    out = []
    for i in range(len(stream)):
        out.extend(decoder.feed(stream[i : i + 1]))
    assert [decode_message(o) for o in out] == messages
    assert decoder.buffered == 0
    decoder.check_complete()


def test_oversize_is_refused_at_the_header() -> None:
    decoder = FrameDecoder()
    with pytest.raises(FrameTooLarge) as info:
        decoder.feed(struct.pack(">I", MAX_FRAME + 1))  # no body sent at all
    assert info.value.code == "too_large"
    assert one_sentence(str(info.value))
    assert decoder.buffered == 0
    with pytest.raises(MalformedMessage):
        decoder.feed(b"more")  # a failed decoder stays failed


def test_largest_declared_length_is_refused() -> None:
    with pytest.raises(FrameTooLarge):
        FrameDecoder().feed(b"\xff\xff\xff\xff")


def test_frame_at_the_cap_is_accepted() -> None:
    body = dumps({"x": "a" * 50})
    assert FrameDecoder(max_frame=len(body)).feed(frame(body)) == [{"x": "a" * 50}]
    with pytest.raises(FrameTooLarge):
        FrameDecoder(max_frame=len(body) - 1).feed(frame(body)[:4])
    with pytest.raises(FrameTooLarge):
        encode_frame({"x": "a" * 50}, max_frame=len(body) - 1)


def test_truncated_input_is_reported() -> None:
    data = encode_message(SAMPLES["Ping"])
    for cut in (1, 3, 4, len(data) - 1):
        decoder = FrameDecoder()
        assert decoder.feed(data[:cut]) == []
        with pytest.raises(MalformedMessage) as info:
            decoder.check_complete()
        assert one_sentence(str(info.value))


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xff\xfe",
        b"{",
        b"[1, 2]",
        b'"text"',
        b"null",
        b'{"x": NaN}',
        b"[" * 100_000 + b"]" * 100_000,
        b'{"x": ' + b"9" * 5000 + b"}",
    ],
)
def test_bad_payloads_are_malformed(payload: bytes) -> None:
    with pytest.raises(MalformedMessage) as info:
        FrameDecoder().feed(frame(payload))
    assert info.value.code == "malformed"
    assert one_sentence(str(info.value))


# -- messages -----------------------------------------------------------------


def test_every_message_has_a_sample() -> None:
    assert set(SAMPLES) == set(MESSAGES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_message_round_trips(name: str) -> None:
    msg = SAMPLES[name]
    wire = encode_message(msg)
    assert parse_message(wire[4:]) == msg
    assert type(msg).from_json(json.loads(wire[4:])) == msg
    assert msg.to_json()["type"] == name


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_missing_and_mistyped_fields(name: str) -> None:
    good = SAMPLES[name].to_json()
    for key in good:
        if key == "type":
            continue
        missing = {k: v for k, v in good.items() if k != key}
        with pytest.raises(MalformedMessage) as info:
            decode_message(missing)
        assert one_sentence(str(info.value)) and key in str(info.value)
        for wrong in (None, True, 1.5, "x" * 1000, [object.__name__], {"a": 1}, -1):
            if isinstance(good[key], type(wrong)) and not isinstance(wrong, bool | float):
                continue  # same JSON type: only range checks could catch it
            if isinstance(good[key], float) and type(wrong) is float:
                continue  # a float field takes fractions
            try:
                decode_message({**good, key: wrong})
            except WireError as exc:
                assert one_sentence(str(exc)), str(exc)
                assert len(str(exc)) < 160  # a long bad value is never echoed whole
            else:
                pytest.fail(f"{name}.{key} accepted {wrong!r}")


def test_range_checks() -> None:
    cases = [
        {**SAMPLES["Ping"].to_json(), "library_rev": -1},
        {**SAMPLES["Ping"].to_json(), "peer_id": "ABCDEF0123456789ABCDEF0123456789"},
        {**SAMPLES["Hello"].to_json(), "data_port": 70_000},
        {**SAMPLES["GetGame"].to_json(), "game_id": ""},
        {**SAMPLES["Pong"].to_json(), "library_rev": 2**70},
    ]
    for obj in cases:
        with pytest.raises(MalformedMessage) as info:
            decode_message(obj)
        assert one_sentence(str(info.value))


def test_nested_errors_name_the_place() -> None:
    obj = SAMPLES["LibrarySnapshot"].to_json()
    obj["games"][1]["size"] = "big"
    with pytest.raises(MalformedMessage, match=r"LibrarySnapshot\.games\[1\]\.size"):
        decode_message(obj)


def test_unknown_and_missing_type() -> None:
    with pytest.raises(UnknownMessageType) as info:
        decode_message({"type": "OpenTransfer" * 10})
    assert info.value.code == "unknown_type" and one_sentence(str(info.value))
    for obj in ({}, {"type": 3}, [], "Ping"):
        with pytest.raises(MalformedMessage):
            decode_message(obj)


def test_typed_from_json_wants_its_own_type() -> None:
    with pytest.raises(MalformedMessage, match="expected a HelloAck"):
        HelloAck.from_json(SAMPLES["Hello"].to_json())


def test_unknown_fields_are_ignored() -> None:
    obj = {**SAMPLES["Ping"].to_json(), "future_field": [1, 2]}
    assert decode_message(obj) == SAMPLES["Ping"]


def test_requests_and_replies() -> None:
    requests = {n for n, m in SAMPLES.items() if m.is_request()}
    assert requests == {"Hello", "GetSnapshot", "GetDelta", "GetGame"} | {
        "OpenTransfer",
        "StreamInstall",
        "Ping",
        "Goodbye",
        "GetPartyCatalog",
    }
    assert all("peer_id" in SAMPLES[n].to_json() for n in requests)
    delta = SAMPLES["GetDelta"]
    assert delta.accepts_reply(SAMPLES["LibraryDelta"])
    assert delta.accepts_reply(SAMPLES["LibrarySnapshot"])  # the gap fallback
    assert delta.accepts_reply(SAMPLES["Error"])
    assert not delta.accepts_reply(SAMPLES["Pong"])


def test_transfer_messages_are_bounded() -> None:
    good = SAMPLES["OpenTransfer"].to_json()
    one = {"path": "a.eti", "offset": 0, "length": 1}
    assert len(decode_message({**good, "ranges": [one] * MAX_TRANSFER_RANGES}).ranges) == (
        MAX_TRANSFER_RANGES
    )
    grant = SAMPLES["TransferGrant"].to_json()
    cases = [
        {**good, "ranges": [one] * (MAX_TRANSFER_RANGES + 1)},
        {**good, "ranges": []},
        {**good, "ranges": [{**one, "offset": -1}]},
        {**good, "ranges": [{**one, "path": ""}]},
        {**good, "ranges": [{**one, "path": "x" * 5000}]},
        {**good, "ranges": [{"path": "a.eti", "offset": 0}]},
        {**grant, "token": "not-hex"},
        {**grant, "token": TOKEN.upper()},
        {**grant, "expires_in": -1},
        {**grant, "expires_in": 10**400},
    ]
    for obj in cases:
        with pytest.raises(MalformedMessage) as info:
            decode_message(obj)
        assert one_sentence(str(info.value)), str(info.value)
    # JSON cannot tell 30 from 30.0: an integral expires_in is a float all the same
    assert decode_message({**grant, "expires_in": 30}) == SAMPLES["TransferGrant"]
    assert OpenTransfer.accepts_reply(SAMPLES["OpenTransfer"], SAMPLES["TransferGrant"])


def test_error_text_is_clipped() -> None:
    assert len(Error.of("internal", "x" * 10_000).message) <= 500


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None)
@given(
    name=st.sampled_from(sorted(SAMPLES)),
    changes=st.dictionaries(st.text(max_size=15), json_values, max_size=3),
)
def test_any_json_object_decodes_or_fails_cleanly(name: str, changes: dict) -> None:
    obj = {**SAMPLES[name].to_json(), **changes}
    try:
        msg = decode_message(obj)
    except WireError as exc:
        assert one_sentence(str(exc))
    else:
        assert decode_message(msg.to_json()) == msg
