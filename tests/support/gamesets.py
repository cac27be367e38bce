"""Fixture game sets built once per test session, copied wherever a test wants one.

Building a set writes every byte through the RAR writer; the download tests
want tens of MiB per peer, again and again. A copy of a set built earlier is
byte for byte what :func:`create_set` would write, since a game's bytes depend
only on its id, paths and size.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from lanspread_fixture.gamesets import GAMES, SETS, create_set, merge_catalog


class GameSets:
    """:func:`create_set`, with each (set, size, format) built once into ``cache``."""

    def __init__(self, cache: Path) -> None:
        self._cache = cache

    def create(
        self,
        dest: Path,
        set_name: str,
        size: int | None = None,
        catalog: Path | None = None,
        fmt: str = "rar",
    ) -> list[str]:
        built = self._cache / f"{set_name}-{size}-{fmt}"
        if not built.exists():
            partial = built.with_name(built.name + ".partial")
            shutil.rmtree(partial, ignore_errors=True)
            create_set(partial, set_name, size=size, fmt=fmt)
            partial.rename(built)  # a set that failed half-way is never reused
        ids = list(SETS[set_name])
        for gid in ids:
            shutil.copytree(built / gid, dest / gid, dirs_exist_ok=True)
        if catalog is not None:
            merge_catalog(catalog, [GAMES[gid] for gid in ids])
        return ids
