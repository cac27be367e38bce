"""This peer's identity: a stable ``peer_id`` and a self-signed TLS certificate.

Created on first start in the state directory and reused afterwards:

- ``identity.json``: ``{"format": 1, "peer_id": "<32 hex digits>"}``, written
  last, so it is the commit point of a first start;
- ``identity.crt``: a self-signed EC P-256 certificate whose common name is the
  peer id (valid for 100 years: a LAN party has no PKI to renew against);
- ``identity.key``: its private key (PKCS#8 PEM, mode 0600).

Peers are keyed by ``peer_id`` (exchanged in Hello), never by certificate: the
QUIC client does not verify the server's certificate, which only gives the
control plane its TLS encryption. A damaged identity is never replaced
silently, because a new ``peer_id`` makes every other peer see a stranger;
the error names the files to delete instead.
"""

from __future__ import annotations

import datetime
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from lanspread_core.errors import LanspreadError
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.atomic import write_atomic
from lanspread_core.system.portable import fsync_dir
from lanspread_core.wire.ids import is_peer_id

IDENTITY_FILE = "identity.json"
CERT_FILE = "identity.crt"
KEY_FILE = "identity.key"
FORMAT = 1
CERT_VALIDITY = datetime.timedelta(days=100 * 365)


class IdentityError(LanspreadError):
    """The identity files in the state directory are damaged (one sentence)."""


@dataclass(frozen=True)
class Identity:
    """Who this peer is, and where its TLS certificate and key live."""

    peer_id: str
    cert_path: Path
    key_path: Path


def new_peer_id() -> str:
    """A fresh random 128-bit peer id as 32 lowercase hex digits."""
    return secrets.token_hex(16)


def load_or_create_identity(state: StateDir) -> Identity:
    """Load this peer's identity from ``state``, creating it on first start.

    :raises IdentityError: an identity file exists but is damaged or does not
        match the others; the message says which files to delete.
    """
    state.ensure()
    id_path = state.path / IDENTITY_FILE
    cert_path = state.path / CERT_FILE
    key_path = state.path / KEY_FILE
    if not id_path.exists():
        # No commit point: a first start, or one that crashed before finishing.
        # Nobody has seen this peer id, so leftover cert/key files are replaced.
        peer_id = new_peer_id()
        _write_cert_and_key(peer_id, cert_path, key_path)
        write_atomic(id_path, json.dumps({"format": FORMAT, "peer_id": peer_id}).encode() + b"\n")
        return Identity(peer_id, cert_path, key_path)

    peer_id = _read_peer_id(id_path)
    if not cert_path.exists() and not key_path.exists():
        # The user deleted the pair (as a damaged-pair error suggests): the
        # certificate is not pinned by anyone, so a new one keeps the peer id.
        _write_cert_and_key(peer_id, cert_path, key_path)
    else:
        _check_cert_and_key(peer_id, cert_path, key_path)
    return Identity(peer_id, cert_path, key_path)


def _read_peer_id(id_path: Path) -> str:
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
    assert isinstance(peer_id, str)
    return peer_id


def _check_cert_and_key(peer_id: str, cert_path: Path, key_path: Path) -> None:
    fix = f"delete {cert_path} and {key_path} to make a new certificate (the peer id is kept)"
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


def _write_cert_and_key(peer_id: str, cert_path: Path, key_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
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
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_private_atomic(key_path, key_pem)
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
