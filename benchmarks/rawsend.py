"""The baseline: a bare TCP transfer of files by ``os.sendfile``, nothing else.

``python -m benchmarks.rawsend serve HOST PORT FILE...`` sends the files to the
first client, back to back, then exits; ``... recv HOST PORT [FILE]`` receives
into a reusable buffer, discards it (or, given ``FILE``, writes it there, as a
download must), and prints ``{"bytes": n, "seconds": s}``.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time


def serve(host: str, port: int, files: list[str]) -> None:
    with socket.create_server((host, port)) as server:
        print("listening", flush=True)
        conn, _ = server.accept()
        with conn:
            for path in files:
                with open(path, "rb") as fh:
                    size, offset = os.fstat(fh.fileno()).st_size, 0
                    while offset < size:
                        offset += os.sendfile(conn.fileno(), fh.fileno(), offset, size - offset)


def recv(host: str, port: int, out: str | None = None) -> None:
    buf = memoryview(bytearray(4 << 20))
    total = 0
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644) if out else None
    with socket.create_connection((host, port)) as sock:
        start = time.perf_counter()
        while n := sock.recv_into(buf):
            total += n
            if fd is not None:
                view = buf[:n]
                while view:
                    view = view[os.write(fd, view) :]
        seconds = time.perf_counter() - start
    if fd is not None:
        os.close(fd)
    print(json.dumps({"bytes": total, "seconds": seconds}))


if __name__ == "__main__":
    mode, host, port, *rest = sys.argv[1:]
    serve(host, int(port), rest) if mode == "serve" else recv(host, int(port), *rest)
