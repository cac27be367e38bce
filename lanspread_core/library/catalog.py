"""The catalog: which games exist, their names and current versions.

A JSON file (``--catalog FILE`` or ``LANSPREAD_CATALOG``)::

    {"games": [{"id": "quake", "name": "Quake", "version": "1.09",
                "hashes": {"manifest": "<hex>"}}]}

A bad entry costs one warning line and is skipped; the rest still loads. A
file that cannot be read or parsed at all is one :class:`CatalogError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanspread_core.errors import LanspreadError

ENV_CATALOG = "LANSPREAD_CATALOG"
#: A catalog id is also a folder name, so it is kept to a portable, safe alphabet.
GAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class CatalogError(LanspreadError):
    pass


def valid_game_id(game_id: str) -> bool:
    return bool(GAME_ID.match(game_id)) and ".." not in game_id


@dataclass(frozen=True)
class CatalogGame:
    id: str
    name: str
    version: str
    hashes: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "name": self.name, "version": self.version}
        if self.hashes:
            data["hashes"] = dict(self.hashes)
        return data


@dataclass
class Catalog:
    games: dict[str, CatalogGame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def get(self, game_id: str) -> CatalogGame | None:
        return self.games.get(game_id)


def _game(item: Any) -> CatalogGame:
    if not isinstance(item, dict):
        raise ValueError("is not an object")
    gid, version = item.get("id"), item.get("version")
    if not isinstance(gid, str) or not valid_game_id(gid):
        raise ValueError(f"has an invalid id {gid!r} (letters, digits, '.', '_', '-')")
    if not isinstance(version, str | int | float) or not str(version).strip():
        raise ValueError(f"game {gid!r} has no version")
    name = item.get("name", gid)
    hashes = item.get("hashes") or {}
    if not isinstance(name, str) or not isinstance(hashes, dict):
        raise ValueError(f"game {gid!r} has a bad name or hashes field")
    return CatalogGame(gid, name, str(version).strip(), {str(k): str(v) for k, v in hashes.items()})


def parse_catalog(data: Any, source: str = "catalog") -> Catalog:
    if not isinstance(data, dict) or not isinstance(data.get("games"), list):
        raise CatalogError(f"{source} must be a JSON object with a 'games' list")
    catalog = Catalog()
    for index, item in enumerate(data["games"]):
        try:
            game = _game(item)
        except ValueError as exc:
            catalog.warnings.append(f"{source}: entry {index} {exc}; skipped")
            continue
        if game.id in catalog.games:
            catalog.warnings.append(f"{source}: game {game.id!r} is listed twice; first kept")
            continue
        catalog.games[game.id] = game
    return catalog


def load_catalog(path: Path | None) -> Catalog:
    """Load ``path``; no path means an empty catalog (nothing is shared)."""
    if path is None:
        return Catalog()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog {path} does not exist") from exc
    except OSError as exc:
        raise CatalogError(f"catalog {path} cannot be read: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"catalog {path} is not valid JSON: {exc}") from exc
    return parse_catalog(data, str(path))
