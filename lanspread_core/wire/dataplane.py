"""The data-plane connection's format (DESIGN §5), in one place.

Bulk bytes travel over plain TCP, not QUIC; the control plane only hands out
the right to fetch them. A connection carries grants one after another:

1. Over QUIC the downloader sends ``OpenTransfer {peer_id, game_id, ranges}``
   and gets ``TransferGrant {token, data_port, expires_in}``: a random
   single-use token bound to that game, that peer and exactly those ranges.
2. It connects to ``data_port`` over TCP (or reuses a connection it holds
   there) and sends one *request frame*: a 4-byte big-endian length and that
   many bytes of UTF-8 JSON, ``{"token": "<32 lowercase hex>"}``, at most
   :data:`REQUEST_MAX` bytes. Other keys are ignored (room for later versions).
3. The server answers with one *status frame*, framed the same way and at
   most :data:`STATUS_MAX` bytes: ``{"ok": true}``, or ``{"ok": false,
   "error": "<one sentence>"}`` followed by the server closing the connection.
   A token is spent by the attempt, refused or not.
4. After ``ok``, the bytes of the granted ranges follow back to back, in the
   order of ``OpenTransfer.ranges``, with no framing: the receiver knows
   every length.
5. The server then reads the next request frame on the same connection and
   answers it the same way. The receiver may send it early, while the bytes
   of the previous grant are still arriving (pipelining: the link never
   idles between grants and TCP keeps its window). The server closes the
   connection when no request arrives within :data:`FIRST_REQUEST_TIMEOUT`
   seconds of connecting or :data:`REQUEST_TIMEOUT` seconds of a grant's last
   byte, and after a stream-install grant
   (:mod:`lanspread_core.streamframes`), which is always the last.
6. The receiver may close at any moment to abort. A sender that cannot
   continue (the game became busy, its file shrank) closes early, so a
   receiver must treat a short read as a failed source.

Framing reuses :mod:`lanspread_core.wire.framing` with small caps, because
nothing on this connection needs more than a token or a sentence.
"""

from __future__ import annotations

from typing import Any

from lanspread_core.wire.errors import MalformedMessage
from lanspread_core.wire.framing import encode_frame, loads
from lanspread_core.wire.messages import is_transfer_token

REQUEST_MAX = 1024
STATUS_MAX = 4096
REQUEST_TIMEOUT = 10.0
#: An honest receiver sends its request as it connects; an idle connection
#: holds a descriptor for nothing, so it is closed this soon.
FIRST_REQUEST_TIMEOUT = 3.0
#: Characters of an error sentence sent in a status frame (UTF-8 and JSON
#: escaping at most sextuple it, which stays well under STATUS_MAX).
_MAX_ERROR_CHARS = 500


def encode_request(token: str) -> bytes:
    return encode_frame({"token": token}, max_frame=REQUEST_MAX)


def parse_request(payload: bytes) -> str:
    """The token in a request frame's payload.

    :raises MalformedMessage: not a JSON object with a well-formed token.
    """
    obj = loads(payload)
    token = obj.get("token")
    if not isinstance(token, str) or not is_transfer_token(token):
        raise MalformedMessage("a data request needs a 'token' of 32 lowercase hex digits")
    return token


def encode_status(error: str | None = None) -> bytes:
    """The status frame: ``ok``, or a refusal with ``error``."""
    body: dict[str, Any] = {"ok": True}
    if error is not None:
        if len(error) > _MAX_ERROR_CHARS:
            error = error[: _MAX_ERROR_CHARS - 3] + "..."
        body = {"ok": False, "error": error}
    return encode_frame(body, max_frame=STATUS_MAX)


def parse_status(payload: bytes) -> str | None:
    """``None`` for ``ok``, else the server's error sentence.

    :raises MalformedMessage: not a status object.
    """
    obj = loads(payload)
    ok = obj.get("ok")
    if ok is True:
        return None
    error = obj.get("error")
    if ok is False and isinstance(error, str):
        return error or "refused without a reason"
    raise MalformedMessage("a data status needs 'ok': true, or 'ok': false and an 'error'")
