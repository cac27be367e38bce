"""QUIC settings of the control plane, built at the edge (like aioquic's examples)."""

from __future__ import annotations

import ssl

from aioquic.quic.configuration import QuicConfiguration

from lanspread_core.control.identity import Identity

ALPN = "lanspread/1"

#: Silence after which QUIC declares a connection dead. The runtime pings a
#: peer every ~2 s, so a live but quiet peer never gets near it, while a dead
#: one (unplugged, killed) is noticed within this many seconds.
IDLE_TIMEOUT = 10.0
#: How long a client waits for the QUIC handshake.
CONNECT_TIMEOUT = 5.0
#: Default wait for one request's reply (callers pass shorter ones for pings).
REQUEST_TIMEOUT = 10.0
#: How long closing a client waits for QUIC's close handshake before it drops
#: the socket anyway (the CONNECTION_CLOSE frame is already sent by then).
CLOSE_TIMEOUT = 0.5
#: Requests one connection may have in flight at the server (receiving or
#: being handled); more get a ``busy`` Error. Bounds what one connection can
#: make the server buffer to this many frames.
MAX_STREAMS_PER_CONNECTION = 32
#: Requests a client keeps in flight on one connection; more wait for a slot.
#: Below the server's limit: a request the client abandoned (timeout) still
#: counts at the server until the client's STOP_SENDING arrives.
CLIENT_MAX_IN_FLIGHT = 24


def server_configuration(
    identity: Identity, *, idle_timeout: float = IDLE_TIMEOUT
) -> QuicConfiguration:
    config = QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=False,
        idle_timeout=idle_timeout,
    )
    config.load_cert_chain(identity.cert_path, identity.key_path)
    return config


def client_configuration(
    server_name: str, identity: Identity | None = None, *, idle_timeout: float = IDLE_TIMEOUT
) -> QuicConfiguration:
    """A client configuration that presents ``identity``'s certificate when the
    server asks, and checks no certificate chain.

    Peers have self-signed certificates and no shared PKI, so there is no
    chain to check: a peer is its key. The handshake still proves that the
    server holds the key of the certificate it sent (aioquic checks its
    CertificateVerify whatever ``verify_mode`` says), and the peer id is that
    key's hash, so the client knows whom it reached (:mod:`.tlspeer`).
    """
    config = QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=True,
        idle_timeout=idle_timeout,
        verify_mode=ssl.CERT_NONE,
        server_name=server_name,
    )
    if identity is not None:
        config.load_cert_chain(identity.cert_path, identity.key_path)
    return config
