"""Mutual TLS on aioquic: the two places its public API does not reach.

aioquic implements client certificates completely (the server's
CertificateRequest, the client's Certificate and CertificateVerify, checked
against the transcript like the server's), but a server only asks for one
when its TLS context's ``_request_client_certificate`` is set, and the
certificate a handshake proved is kept in ``_peer_certificate``; neither has a
public name. This module is the only code that touches them, so an aioquic
upgrade that renames them fails here, in the unit tests of this module, and
not as peers that silently stop proving who they are.
"""

from __future__ import annotations

from typing import Any

from aioquic.quic.connection import QuicConnection
from cryptography import x509

from lanspread_core.control.identity import peer_id_of_certificate


def ask_for_client_certificate(quic: QuicConnection) -> None:
    """Make a server-side connection ask the client for its certificate.

    The TLS context is created when the first packet arrives, so the switch is
    set right after aioquic creates it. A client that sends none completes the
    handshake anonymously (RFC 8446 4.4.2.4): :func:`proven_peer_id` is then None.
    """
    original = quic._initialize
    conn: Any = quic

    def initialize(peer_cid: bytes) -> None:
        original(peer_cid)
        conn.tls._request_client_certificate = True

    conn._initialize = initialize


def proven_peer_id(quic: QuicConnection) -> str | None:
    """The peer id whose key the other end proved in this connection's
    handshake, or None (no certificate, or the handshake is not done)."""
    tls = getattr(quic, "tls", None)
    cert = getattr(tls, "_peer_certificate", None)
    if not isinstance(cert, x509.Certificate):
        return None
    try:
        return peer_id_of_certificate(cert)
    except (ValueError, TypeError):
        return None
