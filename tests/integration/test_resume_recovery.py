"""Startup recovery sweeps what a stopped download leaves around the sentinel."""

from __future__ import annotations

from pathlib import Path

from support.peerproc import PeerProc

LOOPBACK = ["--listen", "127.0.0.1:0", "--discovery", "static"]


def test_recovery_removes_the_sentinel_scratch_files(tmp_path: Path) -> None:
    root = tmp_path / "games" / "aurora"
    (root / "local").mkdir(parents=True)
    (root / "local" / "save.dat").write_bytes(b"mine")
    (root / ".version.ini.tmp").write_text("1.1\n")  # a crash between write and rename
    (root / ".version.ini.discarded").write_text("1.0\n")  # parked by a replaced download
    with PeerProc(tmp_path, args=LOOPBACK) as peer:
        peer.ok("status")
        assert not (root / ".version.ini.tmp").exists()
        assert not (root / ".version.ini.discarded").exists()
        assert (root / "local" / "save.dat").read_bytes() == b"mine"
