"""The party catalog: one organizer's catalog, signed, that every peer may take.

The organizer makes an Ed25519 key once (``lanspread party init``); its
private half stays in a 0600 file on the organizer's machine and never
travels. ``lanspread catalog publish`` signs the catalog's JSON with it,
together with a sequence number one above the last one published from that
key and a time stamp. The signed document is::

    {"format": "lanspread-party-catalog/1", "key": "lsparty1-<base64url>",
     "seq": 7, "published": "2026-12-02T10:00:00Z",
     "catalog": {"games": [...]}, "signature": "<base64url>"}

The signature covers :data:`SIGNING_CONTEXT` followed by the canonical JSON
(sorted keys, no spaces, UTF-8) of every field but ``signature``. A peer
checks it with the key it trusts and takes a document only when its ``seq``
is above the one it holds (``docs/catalog.md``, ``docs/protocol.md``).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import platformdirs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from lanspread_core.errors import LanspreadError
from lanspread_core.library.catalog import Catalog, CatalogError, parse_catalog
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.atomic import write_atomic
from lanspread_core.wire.schema import clip

FORMAT = "lanspread-party-catalog/1"
#: what a party public key looks like as text: this prefix, then 43 base64url characters
KEY_PREFIX = "lsparty1-"
#: signed before the canonical bytes, so a party signature means nothing elsewhere
SIGNING_CONTEXT = b"lanspread party catalog v1\n"
#: the largest signed document a peer takes (a catalog with per-file hashes is big)
MAX_DOCUMENT = 4 * 1024 * 1024
ENV_PARTY_KEY_FILE = "LANSPREAD_PARTY_KEY_FILE"
_FIELDS = ("format", "key", "seq", "published", "catalog", "signature")


class PartyError(LanspreadError):
    """A key or a signed catalog that cannot be used; the message says why."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# ------------------------------------------------------------------- keys
def default_key_path() -> Path:
    """Where ``party init`` keeps the organizer's private key by default."""
    env = os.environ.get(ENV_PARTY_KEY_FILE)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("lanspread", appauthor=False)) / "party.key"


def key_text(key: Ed25519PublicKey) -> str:
    """The public key as one copyable string: ``lsparty1-`` and its 32 bytes in base64url."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return KEY_PREFIX + _b64(raw)


def parse_key(text: str) -> Ed25519PublicKey:
    """The public key a ``lsparty1-...`` string names.

    :raises PartyError: it is not one (with what one looks like).
    """
    text = text.strip()
    wants = f"a party key is {KEY_PREFIX} and 43 characters, as 'lanspread party init' prints it"
    bad = PartyError(f"{clip(text, 24)!r} is not a party key; {wants}")
    if not text.startswith(KEY_PREFIX):
        raise bad
    try:
        raw = _unb64(text[len(KEY_PREFIX) :])
    except (binascii.Error, ValueError):
        raise bad from None
    if len(raw) != 32:
        raise bad
    return Ed25519PublicKey.from_public_bytes(raw)


def create_key(path: Path) -> str:
    """Make a new party key at ``path`` (owner-only, 0600); its public key text.

    :raises PartyError: ``path`` exists already (a key is never overwritten).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise PartyError(
            f"a party key exists already at {path}; 'lanspread party key' shows it,"
            " or give --key another file"
        ) from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
        fh.flush()
        os.fsync(fh.fileno())
    return key_text(key.public_key())


def load_key(path: Path) -> Ed25519PrivateKey:
    """The organizer's private key at ``path``.

    :raises PartyError: missing, unreadable or not an Ed25519 key.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PartyError(
            f"no party key at {path}; make one with 'lanspread party init' (or give --key)"
        ) from None
    except OSError as exc:
        raise PartyError(f"the party key {path} cannot be read: {exc.strerror or exc}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise PartyError(f"{path} is not a party key made by 'lanspread party init'") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise PartyError(f"{path} is not an Ed25519 key; make one with 'lanspread party init'")
    return key


# --------------------------------------------------------- signed catalogs
def canonical(value: Any) -> bytes:
    """The one byte form of a JSON value that is signed: sorted keys, no spaces, UTF-8."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


@dataclass(frozen=True)
class SignedCatalog:
    """A party catalog as published: checked (:func:`verify`) or just made (:func:`sign`)."""

    key: str
    seq: int
    published: str
    catalog_json: dict[str, Any]
    signature: str

    def unsigned(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "key": self.key,
            "seq": self.seq,
            "published": self.published,
            "catalog": self.catalog_json,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.unsigned(), "signature": self.signature}

    def catalog(self) -> Catalog:
        return parse_catalog(self.catalog_json, f"party catalog seq {self.seq}")


def sign(key: Ed25519PrivateKey, catalog_json: dict[str, Any], seq: int) -> SignedCatalog:
    """Sign ``catalog_json`` (a catalog file's JSON, checked first) as number ``seq``."""
    parse_catalog(catalog_json)  # a catalog nobody could load is not signed
    published = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    draft = SignedCatalog(key_text(key.public_key()), seq, published, catalog_json, "")
    signature = key.sign(SIGNING_CONTEXT + canonical(draft.unsigned()))
    return SignedCatalog(draft.key, seq, published, catalog_json, _b64(signature))


def verify(document: Any) -> SignedCatalog:
    """The signed catalog in ``document``, its signature checked against its own key.

    Whether that key is the party's is the caller's question.

    :raises PartyError: one sentence: what is wrong with it.
    """
    if not isinstance(document, dict) or set(document) != set(_FIELDS):
        raise PartyError(f"a signed catalog is a JSON object with exactly {', '.join(_FIELDS)}")
    if document["format"] != FORMAT:
        raise PartyError(f"a signed catalog of format {str(document['format'])[:40]!r} is unknown")
    seq, published, catalog_json = document["seq"], document["published"], document["catalog"]
    if not isinstance(seq, int) or isinstance(seq, bool) or not 0 < seq < 2**53:
        raise PartyError("a signed catalog's seq must be a positive integer")
    if not isinstance(published, str) or len(published) > 64:
        raise PartyError("a signed catalog's published time must be a short string")
    if not isinstance(catalog_json, dict) or not isinstance(document["signature"], str):
        raise PartyError("a signed catalog needs a catalog object and a signature string")
    key = parse_key(str(document["key"]))
    doc = SignedCatalog(key_text(key), seq, published, catalog_json, document["signature"])
    try:
        body = canonical(doc.unsigned())
    except ValueError:
        raise PartyError("a signed catalog holds a number JSON cannot carry") from None
    if len(body) > MAX_DOCUMENT:
        raise PartyError(f"a signed catalog of {len(body):,} bytes is over {MAX_DOCUMENT:,}")
    try:
        key.verify(_unb64(doc.signature), SIGNING_CONTEXT + body)
    except (InvalidSignature, binascii.Error, ValueError):
        raise PartyError(f"the signature of catalog seq {seq} does not match its key") from None
    try:
        doc.catalog()
    except CatalogError as exc:
        raise PartyError(f"the party catalog seq {seq} is unusable: {exc}") from None
    return doc


def read_signed(path: Path) -> SignedCatalog | None:
    """The signed catalog stored at ``path`` (checked again); None when there is none.

    :raises PartyError: it is there but broken.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise PartyError(f"{path} cannot be read: {exc.strerror or exc}") from None
    try:
        document = json.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise PartyError(f"{path} is not JSON") from None
    return verify(document)


def write_signed(path: Path, doc: SignedCatalog) -> None:
    """Store ``doc`` at ``path`` atomically (a crash leaves the old one or this one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(doc.to_json(), indent=1, sort_keys=True).encode())


def published_path(key_path: Path) -> Path:
    """Where the last catalog published with ``key_path`` is kept (its seq comes next)."""
    return key_path.with_name(key_path.name + ".published.json")


def accepted_path(state: StateDir) -> Path:
    """Where a peer keeps the party catalog it accepted (it survives a restart)."""
    return state.path / "party" / "catalog.signed.json"


def merged(party: Catalog | None, local: Catalog) -> Catalog:
    """The effective catalog: the party's games, then the local-only ones.

    The party wins for an id both name (``docs/decisions.md``).
    """
    if party is None:
        return local
    games = dict(party.games)
    for game_id, game in local.games.items():
        games.setdefault(game_id, game)
    return Catalog(games, [*party.warnings, *local.warnings])
