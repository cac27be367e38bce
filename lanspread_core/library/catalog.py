"""The catalog: which games exist, their names and current versions.

A JSON file (``--catalog FILE``, ``LANSPREAD_CATALOG``, the settings file, or
``<games dir>/catalog.json``; see ``docs/catalog.md``)::

    {"games": [{"id": "quake", "name": "Quake", "version": "1.09", "size": 123,
                "hashes": {"manifest": "<hex>",
                           "files": {"bin/quake.exe": "<hex>"}}}]}

A bad entry costs one warning line and is skipped; the rest still loads. A
file that cannot be read or parsed at all is one :class:`CatalogError`. Fields
this version does not know are kept, so editing a catalog loses nothing.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanspread_core.archive.entrypath import safe_relpath
from lanspread_core.errors import LanspreadError, UnsafeEntryError

ENV_CATALOG = "LANSPREAD_CATALOG"
#: the catalog a games dir holds for itself, used when none is named
CATALOG_NAME = "catalog.json"
#: A catalog id is also a folder name, so it is kept to a portable, safe alphabet.
GAME_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
#: A BLAKE3 (or SHA-256) digest as lowercase hex.
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
#: The key under ``hashes`` that holds per-file hashes, not a single digest.
FILES_KEY = "files"
_KNOWN_KEYS = frozenset({"id", "name", "version", "size", "hashes"})


class CatalogError(LanspreadError):
    pass


def valid_game_id(game_id: str) -> bool:
    return bool(GAME_ID.match(game_id)) and ".." not in game_id


@dataclass(frozen=True)
class CatalogGame:
    """One game of the catalog.

    ``hashes`` holds single trusted digests by name (``manifest``); ``files``
    maps each file of the unpacked tree (a POSIX path under ``local/``) to its
    BLAKE3 hex digest, stored in JSON as ``hashes.files``. ``extra`` keeps
    fields this version does not know, written back as they came.
    """

    id: str
    name: str
    version: str
    hashes: dict[str, str] = field(default_factory=dict)
    size: int | None = None
    files: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {**self.extra}
        data.update({"id": self.id, "name": self.name, "version": self.version})
        if self.size is not None:
            data["size"] = self.size
        hashes: dict[str, Any] = dict(self.hashes)
        if self.files:
            hashes[FILES_KEY] = dict(sorted(self.files.items()))
        if hashes:
            data["hashes"] = hashes
        return data


@dataclass
class Catalog:
    games: dict[str, CatalogGame] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: top-level fields besides ``games``, kept for a rewrite
    extra: dict[str, Any] = field(default_factory=dict)

    def get(self, game_id: str) -> CatalogGame | None:
        return self.games.get(game_id)

    def to_json(self) -> dict[str, Any]:
        """The file's content: games sorted by id, unknown fields kept."""
        return {**self.extra, "games": [self.games[g].to_json() for g in sorted(self.games)]}


def _files(gid: str, raw: Any) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise ValueError(f"game {gid!r} has a 'hashes.files' that is not an object")
    files: dict[str, str] = {}
    for path, digest in raw.items():
        try:
            canonical = safe_relpath(path).as_posix() == path
        except UnsafeEntryError:
            canonical = False
        if not canonical or "\\" in path:
            raise ValueError(
                f"game {gid!r} lists a file {path!r} that is not a plain relative path"
            )
        if not isinstance(digest, str) or not _HEX64.match(digest):
            raise ValueError(f"game {gid!r} file {path!r} has a hash that is not 64 hex digits")
        files[path] = digest
    return files


def _size(gid: str, raw: Any) -> int | None:
    if raw is None:
        return None
    if not isinstance(raw, int) or isinstance(raw, bool) or raw < 0:
        raise ValueError(f"game {gid!r} has a size that is not a whole number of bytes")
    return raw


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
    files = _files(gid, hashes[FILES_KEY]) if FILES_KEY in hashes else {}
    return CatalogGame(
        gid,
        name,
        str(version).strip(),
        {str(k): str(v) for k, v in hashes.items() if k != FILES_KEY},
        size=_size(gid, item.get("size")),
        files=files,
        extra={k: v for k, v in item.items() if k not in _KNOWN_KEYS},
    )


def parse_catalog(data: Any, source: str = "catalog") -> Catalog:
    if not isinstance(data, dict) or not isinstance(data.get("games"), list):
        raise CatalogError(f"{source} must be a JSON object with a 'games' list")
    catalog = Catalog(extra={k: v for k, v in data.items() if k != "games"})
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
    """Load ``path``; no path means an empty catalog (nothing is shared).

    A UTF-8 byte-order mark (what Windows Notepad writes) is accepted.
    """
    if path is None:
        return Catalog()
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise CatalogError(f"catalog {path} does not exist") from exc
    except OSError as exc:
        raise CatalogError(f"catalog {path} cannot be read: {exc.strerror}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CatalogError(f"catalog {path} is not valid JSON: {exc}") from exc
    return parse_catalog(data, str(path))
