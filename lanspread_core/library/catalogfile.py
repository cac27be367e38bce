"""Editing a catalog file: entries made from game roots, atomic saves, ids from folder names.

What ``lanspread catalog`` (and ``pack``) build on. Every write replaces the
file atomically (a crash leaves the old catalog or the new one) with stable
output: games sorted by id, keys sorted, two-space indent, UTF-8 without a
byte-order mark, so two saves of one catalog are byte for byte the same and a
diff shows only what changed. A catalog holding entries that cannot be read is
never rewritten: that would drop them.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from lanspread_core.library import layout
from lanspread_core.library.catalog import (
    GAME_ID,
    Catalog,
    CatalogError,
    CatalogGame,
    load_catalog,
    valid_game_id,
)
from lanspread_core.library.manifest import build_manifest
from lanspread_core.library.versionini import read_version
from lanspread_core.system.atomic import write_atomic

_NOT_ID = re.compile(r"[^a-z0-9._-]+")
_MAX_ID = 64


def catalog_bytes(catalog: Catalog) -> bytes:
    """The canonical file content of ``catalog``."""
    text = json.dumps(catalog.to_json(), indent=2, sort_keys=True, ensure_ascii=False)
    return (text + "\n").encode("utf-8")


def save_catalog(path: Path, catalog: Catalog) -> None:
    """Write ``catalog`` to ``path`` atomically (its folder must exist)."""
    try:
        write_atomic(path, catalog_bytes(catalog))
    except OSError as exc:
        raise CatalogError(f"catalog {path} cannot be written: {exc.strerror or exc}") from exc


def entry_for_root(
    root: Path,
    game_id: str,
    name: str | None = None,
    *,
    check: Callable[[], None] | None = None,
) -> CatalogGame:
    """The catalog entry game root ``root`` deserves (blocking: hashes every archive).

    Records the version ``version.ini`` names, the download's size and its
    manifest hash as trusted. ``check`` is called between chunks (to cancel,
    or to count progress). A missing or unreadable ``version.ini`` is a
    :class:`~lanspread_core.library.versionini.VersionFileError`, a bad file
    name a :class:`~lanspread_core.library.manifest.ManifestError`.
    """
    if not valid_game_id(game_id) or layout.is_reserved(game_id):
        raise CatalogError(f"{game_id!r} is not a valid game id; try {suggest_id(game_id)!r}")
    version = read_version(root / layout.SENTINEL)
    manifest = build_manifest(root, check=check)
    return CatalogGame(
        game_id,
        name or game_id,
        version,
        {"manifest": manifest.manifest_hash},
        size=manifest.total_size,
    )


def editable_catalog(path: Path) -> Catalog:
    """The catalog at ``path`` for editing: empty when missing, refused when lossy."""
    if not path.exists():
        return Catalog()
    catalog = load_catalog(path)
    if catalog.warnings:
        raise CatalogError(
            f"{catalog.warnings[0]}; fix that entry by hand before editing the catalog,"
            " so it is not lost"
        )
    return catalog


def add_to_catalog(path: Path, game: CatalogGame) -> Catalog:
    """Add ``game`` to the catalog at ``path`` (made if missing), replacing its id."""
    catalog = editable_catalog(path)
    old = catalog.games.get(game.id)
    if old is not None and old.extra and not game.extra:
        game = replace(game, extra=old.extra)  # fields we do not know stay
    catalog.games[game.id] = game
    save_catalog(path, catalog)
    return catalog


def remove_from_catalog(path: Path, game_id: str) -> Catalog:
    """Remove ``game_id`` from the catalog at ``path``; the rest is kept as it is."""
    if not path.exists():
        raise CatalogError(f"catalog {path} does not exist")
    catalog = editable_catalog(path)
    if catalog.games.pop(game_id, None) is None:
        raise CatalogError(
            f"catalog {path} has no game {game_id!r}; 'lanspread catalog show' lists its ids"
        )
    save_catalog(path, catalog)
    return catalog


def suggest_id(folder_name: str) -> str:
    """A valid game id for ``folder_name``: "Half Life" gives "half-life".

    Lower case, accents folded to ASCII where Unicode allows (``Café`` gives
    ``cafe``), any run of other characters one ``-``, at most 64 characters.
    A name with nothing usable gives ``game``.
    """
    ascii_name = (
        unicodedata.normalize("NFKD", folder_name).encode("ascii", "ignore").decode("ascii")
    )
    slug = _NOT_ID.sub("-", ascii_name.lower())
    slug = re.sub(r"\.{2,}", ".", slug)
    slug = re.sub(r"-{2,}", "-", slug)
    slug = slug.strip("-._")[:_MAX_ID].rstrip("-._")
    if not slug:
        slug = "game"
    if layout.is_reserved(slug):
        slug = f"{slug}-game"
    assert GAME_ID.match(slug) and valid_game_id(slug), slug
    return slug
