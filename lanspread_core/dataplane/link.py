"""One download stream's connection to a source's data port, kept across grants.

A fresh TCP connection per grant costs a handshake, a slow start and, on a
shaped link, a dip each time the previous connection's share of the link
frees up. A :class:`DataLink` keeps one :class:`~.client.DataConnection`
and puts every grant on it, the next request sent while the previous
grant's bytes still arrive, so the link does not idle between grants.

It opens a new connection only when it has none, the one it has failed, or
that one sat idle long enough that the server may be closing it
(:data:`~.protocol.REQUEST_TIMEOUT`). A pipelined request (one sent while
another grant is still being received) never opens a connection: the
receiving thread may still be using the old one, which only the owner may
close, after it is done.

Blocking: call :meth:`request` from a worker thread.
"""

from __future__ import annotations

from lanspread_core.dataplane.client import DataConnection
from lanspread_core.dataplane.errors import SourceFailed
from lanspread_core.wire.dataplane import REQUEST_TIMEOUT

#: A connection idle this long is replaced rather than reused: well inside
#: the server's REQUEST_TIMEOUT, so a request never races the server's close.
REUSE_IDLE = REQUEST_TIMEOUT / 2


class DataLink:
    """Connections to one host's data port, reused; closed by :meth:`close`."""

    def __init__(self, host: str, *, timeout: float) -> None:
        self.host = host
        self.timeout = timeout
        self._conn: DataConnection | None = None
        self._port = 0

    def request(self, port: int, token: str, *, pipelined: bool) -> DataConnection:
        """Send ``token`` on a usable connection to ``port``; the one that
        will carry the grant (receive it with :meth:`DataConnection.receive`).

        :param pipelined: another grant of this link may still be arriving;
            then a connection that is no longer usable is not replaced.
        :raises SourceFailed: no usable connection, or the send failed.
        """
        conn = self._conn
        if conn is None or self._port != port or not conn.reusable(REUSE_IDLE):
            if pipelined:
                raise SourceFailed(f"the data connection to {self.host} is gone")
            if conn is not None:  # not pipelined: no thread is receiving on it
                conn.close()
            self._conn = None
            conn = self._conn = DataConnection(self.host, port, timeout=self.timeout)
            self._port = port
        conn.request(token)
        return conn

    def close(self) -> None:
        """Close the connection; only once no thread is receiving on it."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> DataLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
