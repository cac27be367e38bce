"""The control-plane wire format (DESIGN §5), in one package.

One request per QUIC bidirectional stream: the client writes one frame and
ends its side of the stream; the server answers with one frame and ends its
side. A frame is a 4-byte big-endian length and a UTF-8 JSON object
(:mod:`~lanspread_core.wire.framing`); the objects are the typed messages of
:mod:`~lanspread_core.wire.messages`.
"""
