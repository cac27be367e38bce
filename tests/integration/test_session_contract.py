"""The JSONL output is a contract: the recorded session and docs/protocol.md.

``tests/data/session/`` holds a session of two real peers recorded byte for
byte before events became typed records (``tests/support/session_recorder.py``
made it). Every event in it must serialise back to the same bytes through
:mod:`lanspread_core.events`; a live session today must produce the same
kinds of records with the same fields in the same order; and every event the
code can emit must be in the events table of ``docs/protocol.md``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from lanspread_core.events import _TABLE, OpKind, UnknownEvent, parse_event
from support.session_recorder import record

TESTS = Path(__file__).resolve().parents[1]
RECORDED = TESTS / "data" / "session"
PROTOCOL = TESTS.parent / "docs" / "protocol.md"


def encode(record: dict[str, Any]) -> bytes:
    """What ``lanspread peer`` writes for one record (``ipc.session``)."""
    return json.dumps(record, ensure_ascii=False, default=str).encode() + b"\n"


def recorded_lines() -> list[bytes]:
    return [
        line
        for name in ("guest.jsonl", "seed.jsonl")
        for line in (RECORDED / name).read_bytes().splitlines(keepends=True)
    ]


def test_every_recorded_event_serialises_back_to_the_same_bytes() -> None:
    events = 0
    for line in recorded_lines():
        rec = json.loads(line)
        if rec["kind"] != "event":
            continue
        event = parse_event({k: v for k, v in rec.items() if k != "kind"})
        assert not isinstance(event, UnknownEvent), rec["event"]
        assert encode({"kind": "event", **event.to_json()}) == line
        events += 1
    assert events > 90  # the recording has 99


def shape(line: bytes) -> tuple[Any, ...]:
    """A record without its values: kind, name, keys in order, result keys in order."""
    rec = json.loads(line)
    result = rec.get("result")
    return (
        rec["kind"],
        rec.get("event") or rec.get("cmd"),
        tuple(rec),
        tuple(result) if isinstance(result, dict) else None,
    )


def test_a_live_session_has_the_recorded_shape(tmp_path: Path) -> None:
    record(tmp_path)
    for name in ("guest.jsonl", "seed.jsonl"):
        live = [shape(x) for x in (tmp_path / name).read_bytes().splitlines()]
        then = [shape(x) for x in (RECORDED / name).read_bytes().splitlines()]
        # timing decides how many library and progress events there are, not which
        assert set(live) == set(then), name


def documented_events() -> set[str]:
    text = PROTOCOL.read_text(encoding="utf-8")
    table = text.split("### Events", 1)[1].split("###", 1)[0]
    names: set[str] = set()
    for row in table.splitlines():
        cell = row.split("|")[1] if row.startswith("|") else ""
        for name in re.findall(r"`([a-z<>-]+)`", cell):
            if name.startswith("<op>-"):
                names.update(f"{kind}-{name[5:]}" for kind in OpKind)
            else:
                names.add(name)
    return names


@pytest.mark.parametrize("name", sorted(_TABLE))
def test_every_event_the_code_knows_is_documented(name: str) -> None:
    assert name in documented_events(), f"{name} is missing from docs/protocol.md"
