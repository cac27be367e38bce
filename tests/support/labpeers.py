"""Whole peers in the LAN lab, one per host, each told where the earlier ones are."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from support.lanlab import LanLab
from support.peerproc import PeerProc


@contextmanager
def lab_peers(tmp_path: Path, catalog: Path, rate: str, n: int) -> Iterator[list[PeerProc]]:
    """``n`` peers in ``tmp_path/h<i>``, on links shaped to ``rate``."""
    with LanLab(n_hosts=n, rate=rate) as lab, ExitStack() as stack:
        peers: list[PeerProc] = []
        for i in range(n):
            static = [arg for p in peers for arg in ("--peer", p.control)]
            peers.append(
                stack.enter_context(
                    PeerProc(
                        tmp_path / f"h{i}",
                        args=[
                            "--listen",
                            f"{lab.hosts[i].addr}:0",
                            "--discovery",
                            "static",
                            "--ping-interval",
                            "0.5",
                            "--stale-timeout",
                            "3",
                            *static,
                        ],
                        prefix=["ip", "netns", "exec", lab.hosts[i].name],
                        catalog=catalog,
                    )
                )
            )
        yield peers
