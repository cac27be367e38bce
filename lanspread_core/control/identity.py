"""This peer's identity: a long-lived key, and the ``peer_id`` derived from it.

Created on first start in the state directory and reused afterwards:

- ``identity.json``: ``{"format": 2, "peer_id": "<32 hex digits>"}``, written
  last, so it is the commit point of a first start;
- ``identity.crt``: a self-signed EC P-256 certificate whose common name is the
  peer id (valid for 100 years: a LAN party has no PKI to renew against);
- ``identity.key``: its private key (PKCS#8 PEM, mode 0600).

The peer id is the first 128 bits of the SHA-256 of the key's public part
(:func:`peer_id_of`). Both ends of every control connection present their
certificate and prove the key in the TLS handshake, so a peer id cannot be
claimed without the key (docs/protocol.md, "Identity"). An identity of format
1 (a random id from before) keeps its key and gets the id of that key, once,
with one log line. A damaged identity is never replaced silently, because a
new key makes every other peer see a stranger; the error names the files to
delete instead.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.oid import NameOID

from lanspread_core.errors import LanspreadError
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.atomic import write_atomic
from lanspread_core.system.portable import fsync_dir
from lanspread_core.wire.ids import is_peer_id

log = logging.getLogger(__name__)

IDENTITY_FILE = "identity.json"
CERT_FILE = "identity.crt"
KEY_FILE = "identity.key"
#: 2: the peer id is derived from the key; 1: it was random (migrated on load)
FORMAT = 2
CERT_VALIDITY = datetime.timedelta(days=100 * 365)


class IdentityError(LanspreadError):
    """The identity files in the state directory are damaged (one sentence)."""


@dataclass(frozen=True)
class Identity:
    """Who this peer is, and where its TLS certificate and key live."""

    peer_id: str
    cert_path: Path
    key_path: Path


def peer_id_of(public_key: PublicKeyTypes) -> str:
    """The peer id a key proves: the first 128 bits of the SHA-256 of its
    public part (DER SubjectPublicKeyInfo), as 32 lowercase hex digits."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(der).hexdigest()[:32]


def peer_id_of_certificate(cert: x509.Certificate) -> str:
    """The peer id of whoever holds ``cert``'s key (see :func:`peer_id_of`)."""
    return peer_id_of(cert.public_key())


def load_or_create_identity(state: StateDir) -> Identity:
    """Load this peer's identity from ``state``, creating it on first start.

    :raises IdentityError: an identity file exists but is damaged or does not
        match the others; the message says which files to delete.
    """
    state.ensure()
    id_path = state.path / IDENTITY_FILE
    cert_path = state.path / CERT_FILE
    key_path = state.path / KEY_FILE
    if not id_path.exists() or not cert_path.exists() and not key_path.exists():
        # No commit point: a first start, or one that crashed before finishing;
        # or the user deleted the pair, as a damaged-pair error suggests. A new
        # key is a new peer id (the id is the key's), so the id file follows it.
        peer_id = _write_cert_and_key(cert_path, key_path)
        _write_id(id_path, peer_id)
        return Identity(peer_id, cert_path, key_path)

    peer_id, format_ = _read_peer_id(id_path)
    key = _check_cert_and_key(peer_id, cert_path, key_path)
    proven = peer_id_of(key.public_key())
    if format_ < FORMAT or peer_id != proven:
        # from a release whose ids were random: the key stays, the id becomes the key's
        _write_cert(key, proven, cert_path)
        _write_id(id_path, proven)
        log.warning(
            "this peer's id is now %s, derived from its key (it was %s): other peers"
            " see it as a new peer once",
            proven[:8],
            peer_id[:8],
        )
        peer_id = proven
    return Identity(peer_id, cert_path, key_path)


def _write_id(id_path: Path, peer_id: str) -> None:
    write_atomic(id_path, json.dumps({"format": FORMAT, "peer_id": peer_id}).encode() + b"\n")


def _read_peer_id(id_path: Path) -> tuple[str, int]:
    try:
        data = json.loads(id_path.read_bytes())
    except (OSError, ValueError) as exc:
        raise IdentityError(
            f"the peer identity file {id_path} is unreadable ({_reason(exc)});"
            " delete it to start as a new peer (other peers will see a new peer id)"
        ) from None
    peer_id = data.get("peer_id") if isinstance(data, dict) else None
    if not is_peer_id(peer_id):
        raise IdentityError(
            f"the peer identity file {id_path} holds no valid peer_id;"
            " delete it to start as a new peer (other peers will see a new peer id)"
        )
    assert isinstance(peer_id, str) and isinstance(data, dict)
    format_ = data.get("format", 1)
    return peer_id, format_ if isinstance(format_, int) else 1


def _check_cert_and_key(
    peer_id: str, cert_path: Path, key_path: Path
) -> ec.EllipticCurvePrivateKey:
    fix = (
        f"delete {cert_path} and {key_path} to start with a new key"
        " (other peers will see a new peer id)"
    )
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise IdentityError(
            f"the peer certificate or key is unreadable ({_reason(exc)}); {fix}"
        ) from None
    names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if [n.value for n in names] != [peer_id]:
        raise IdentityError(f"the peer certificate {cert_path} names another peer id; {fix}")
    if cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ):
        raise IdentityError(f"the peer key {key_path} does not match its certificate; {fix}")
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IdentityError(f"the peer key {key_path} is not an EC key; {fix}")
    return key


def _write_cert_and_key(cert_path: Path, key_path: Path) -> str:
    """A new key and its certificate; the peer id they prove."""
    key = ec.generate_private_key(ec.SECP256R1())
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private_atomic(key_path, key_pem)
    peer_id = peer_id_of(key.public_key())
    _write_cert(key, peer_id, cert_path)
    return peer_id


def _write_cert(key: ec.EllipticCurvePrivateKey, peer_id: str, cert_path: Path) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, peer_id)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + CERT_VALIDITY)
        .sign(key, hashes.SHA256())
    )
    write_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM))


def _write_private_atomic(path: Path, data: bytes) -> None:
    """Like :func:`~lanspread_core.system.atomic.write_atomic`, but the bytes are never
    readable by others, not even for a moment: the temp file is born 0600."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or type(exc).__name__
    text = str(exc).split("\n", 1)[0].strip().rstrip(".")
    return text[:120] or type(exc).__name__
