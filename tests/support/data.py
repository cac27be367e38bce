"""Where the test data lives: real RAR archives with what they must unpack to."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
ROOT = TESTS.parent
DATA = TESTS / "data"
#: rarfile's test archives and EXPECTED.json (see tests/data/rar/README.md)
RAR_FIXTURES = DATA / "rar"


def expected_rar() -> dict[str, Any]:
    """Per archive: its entries as the official unrar library lists them, and more."""
    return json.loads((RAR_FIXTURES / "EXPECTED.json").read_text(encoding="utf-8"))
