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
