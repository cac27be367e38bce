"""What goes wrong on the data plane, each as one sentence for a user or a log."""

from __future__ import annotations

from lanspread_core.errors import LanspreadError


class TransferRefused(LanspreadError):
    """The serving side will not send these bytes: a bad, used or expired token,
    a game that is not servable now, or a range it must not or cannot serve."""


class SourceFailed(LanspreadError):
    """A source peer's data connection failed: no connection, a stall, or an
    early end. The planner fetches the unfinished chunks elsewhere."""


class SourceRefused(SourceFailed):
    """The source peer answered the data connection with a refusal."""


class DataListenError(LanspreadError):
    """The data-plane server cannot listen on the address it was given.

    ``errno`` is the socket error's number (``EADDRINUSE``: the port is taken).
    """

    def __init__(self, message: str, *, errno: int | None = None) -> None:
        super().__init__(message)
        self.errno = errno
