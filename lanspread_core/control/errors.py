"""Failures of a control-plane request, as a caller sees them."""

from __future__ import annotations

from lanspread_core.errors import LanspreadError


class ListenError(LanspreadError):
    """The control server cannot listen on the address it was given.

    ``errno`` is the socket error's number (``EADDRINUSE``: the port is taken).
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno


class PeerUnreachable(LanspreadError):
    """The peer did not answer: no connection, the connection died, or a timeout."""


class PeerError(LanspreadError):
    """The peer answered, but with an Error, or with something that is no answer.

    ``code`` is the Error's code (``protocol`` when the reply itself was wrong).
    """

    def __init__(self, message: str, *, code: str) -> None:
        super().__init__(message)
        self.code = code
