"""lanspread-fixture: test fixtures for Lanspread.

* :mod:`~lanspread_fixture.rarwriter` writes stored-mode RAR5 archives;
* :mod:`~lanspread_fixture.fixtureformat` is a tiny documented archive format
  and :mod:`~lanspread_fixture.provider` its archive provider (``fixture``);
* :mod:`~lanspread_fixture.gamesets` makes deterministic, overlapping game
  sets, also as ``lanspread fixtures create``.
"""

from __future__ import annotations

from lanspread_fixture.fixtureformat import FixtureWriter
from lanspread_fixture.gamesets import DEFAULT_SIZE, GAMES, SETS, create_set
from lanspread_fixture.provider import FixtureProvider
from lanspread_fixture.rarwriter import RarWriter

__all__ = [
    "DEFAULT_SIZE",
    "GAMES",
    "SETS",
    "FixtureProvider",
    "FixtureWriter",
    "RarWriter",
    "create_set",
]
