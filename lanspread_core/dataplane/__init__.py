"""The data plane (DESIGN §5): bulk bytes over plain TCP, granted over QUIC.

* :mod:`~.protocol`: the connection's format (request frame, status frame,
  raw ranges).
* :mod:`~.tokens`: single-use, short-lived transfer tokens.
* :mod:`~.outbound`: live outbound transfers as readers of a game, so that
  an update or removal can stop them and wait before it writes.
* :mod:`~.server`: ``serve_data``, the sender (``sendfile``, zero copy).
* :mod:`~.client`: ``DataConnection`` and ``fetch_ranges``, the blocking receiver (verify, pwrite).
* :mod:`~.files`: ``DownloadFiles``, the pre-sized files a download fills.
"""

from __future__ import annotations

from lanspread_core.dataplane.client import ChunkJob, ChunkWriter, DataConnection, fetch_ranges
from lanspread_core.dataplane.errors import (
    DataListenError,
    SourceFailed,
    SourceRefused,
    TransferRefused,
    UnsafeDownloadPath,
)
from lanspread_core.dataplane.files import DownloadFiles, download_path
from lanspread_core.dataplane.outbound import OutboundTransfer, OutboundTransfers
from lanspread_core.dataplane.server import DataEndpoint, Resolve, servable_path, serve_data
from lanspread_core.dataplane.tokens import Grant, TransferTokens

__all__ = [
    "ChunkJob",
    "ChunkWriter",
    "DataConnection",
    "DataEndpoint",
    "DataListenError",
    "DownloadFiles",
    "Grant",
    "OutboundTransfer",
    "OutboundTransfers",
    "Resolve",
    "SourceFailed",
    "SourceRefused",
    "TransferRefused",
    "TransferTokens",
    "UnsafeDownloadPath",
    "download_path",
    "fetch_ranges",
    "servable_path",
    "serve_data",
]
