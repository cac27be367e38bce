"""Where the test data lives: real RAR archives with what they must unpack to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from lanspread_core.control.identity import Identity

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
DATA = TESTS / "data"
#: rarfile's test archives and EXPECTED.json (see tests/data/rar/README.md)
RAR_FIXTURES = DATA / "rar"


def expected_rar() -> dict[str, Any]:
    """Per archive: its entries as the official unrar library lists them, and more."""
    return json.loads((RAR_FIXTURES / "EXPECTED.json").read_text(encoding="utf-8"))


#: a fixed peer identity (see tests/data/identity/README.md)
IDENTITY_DIR = DATA / "identity"


def fixed_identity() -> Identity:
    """The fixed identity tests present as a control-plane client: its peer id
    is a constant, :data:`TEST_PEER_ID`."""
    peer_id = json.loads((IDENTITY_DIR / "identity.json").read_text(encoding="utf-8"))["peer_id"]
    return Identity(peer_id, IDENTITY_DIR / "identity.crt", IDENTITY_DIR / "identity.key")


#: the peer id of :func:`fixed_identity`
TEST_PEER_ID = "665171a8072221895bcf86570a3364f1"
