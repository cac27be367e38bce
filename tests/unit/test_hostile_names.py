"""Names and ids from other peers are bounded, and a refusal never echoes them in full."""

from __future__ import annotations

import json
from typing import Any

import pytest

from lanspread_core.wire.errors import WireError
from lanspread_core.wire.messages import (
    MAX_PEER_NAME,
    PROTO_VER,
    Error,
    Hello,
    encode_message,
    parse_message,
)

PID = "a" * 32
HUGE = "x" * 900_000


def hello(**fields: Any) -> dict[str, Any]:
    msg = {
        "type": "Hello",
        "peer_id": PID,
        "proto_ver": PROTO_VER,
        "library_rev": 1,
        "library_digest": "0" * 32,
        "features": ["library-delta", "tcp-data"],
        "data_port": 1,
        "name": "alice",
        "control_port": 2,
    }
    return {**msg, **fields}


def info(**fields: Any) -> dict[str, Any]:
    game = {"id": "g", "version": "1", "size": 1, "manifest_hash": "h"}
    return {**game, **fields}


HOSTILE: dict[str, dict[str, Any]] = {
    "a 1 MB peer name": hello(name="n" * 1_000_000),
    "a peer name one over the limit": hello(name="n" * (MAX_PEER_NAME + 1)),
    "a huge library digest": hello(library_digest=HUGE),
    "a huge feature": hello(features=[HUGE]),
    "ten thousand features": hello(features=[f"f{i}" for i in range(10_000)]),
    "a huge digest in a ping": {
        "type": "Ping",
        "peer_id": PID,
        "library_rev": 1,
        "library_digest": HUGE,
    },
    "a huge game id in a snapshot": {
        "type": "LibrarySnapshot",
        "peer_id": PID,
        "library_rev": 1,
        "games": [info(id=HUGE)],
    },
    "a huge version in a snapshot": {
        "type": "LibrarySnapshot",
        "peer_id": PID,
        "library_rev": 1,
        "games": [info(version=HUGE)],
    },
    "a huge manifest hash": {
        "type": "LibrarySnapshot",
        "peer_id": PID,
        "library_rev": 1,
        "games": [info(manifest_hash=HUGE)],
    },
    "a huge removed id in a delta": {
        "type": "LibraryDelta",
        "peer_id": PID,
        "from_rev": 1,
        "to_rev": 2,
        "added": [],
        "updated": [],
        "removed": [HUGE],
    },
    "a huge game id in GetGame": {"type": "GetGame", "peer_id": PID, "game_id": HUGE},
    "a huge version in a manifest": {
        "type": "GameManifest",
        "game_id": "g",
        "version": HUGE,
        "manifest": {},
    },
    "a huge error message": {"type": "Error", "code": "internal", "message": HUGE},
}


@pytest.mark.parametrize("msg", HOSTILE.values(), ids=HOSTILE.keys())
def test_an_overlong_field_is_refused_without_echoing_it(msg: dict[str, Any]) -> None:
    with pytest.raises(WireError) as refused:
        parse_message(json.dumps(msg).encode())
    assert len(str(refused.value)) < 300
    reply = Error.from_wire_error(refused.value)
    assert len(encode_message(reply)) < 600


def test_names_within_the_bounds_are_accepted() -> None:
    msg = parse_message(json.dumps(hello(name="n" * MAX_PEER_NAME)).encode())
    assert isinstance(msg, Hello) and len(msg.name) == MAX_PEER_NAME
