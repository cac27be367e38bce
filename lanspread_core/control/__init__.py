"""The control plane over QUIC (aioquic): ALPN ``lanspread/1``, one request per stream.

- :func:`serve_control` answers requests with a handler until cancelled;
- :class:`ControlClient` sends requests to one peer; :class:`ControlPool`
  keeps one client per address.

Messages and framing are :mod:`lanspread_core.wire`'s business.
"""
