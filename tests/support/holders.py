"""A stand-in for the peers a transfer sees (``PeerAccess``), over real manifests.

Each holder lists aurora 1.0 with one manifest and answers ``GetGame`` with
that one or another (a liar), from a machine of its own (votes count per
machine). Every ``GetGame`` is recorded in ``asked``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from lanspread_core.library.manifest import Manifest, build_manifest
from lanspread_core.transfer.sources import Source
from lanspread_core.wire.messages import GameInfo, GameManifest, GetGame, Message


@dataclass
class Holder:
    peer_id: str
    host: str
    name: str = ""
    games: dict[str, GameInfo] = field(default_factory=dict)


class Holders:
    """``PeerAccess`` over holders that list one manifest and may send another."""

    def __init__(self, self_id: str = "e" * 32) -> None:
        self._self_id = self_id
        self.peers: dict[str, Holder] = {}
        self.sends: dict[str, Manifest] = {}
        self.asked: list[str] = []

    def add(self, pid: str, name: str, lists: Manifest, sends: Manifest | None = None) -> None:
        """``pid`` lists ``lists`` (and sends ``sends``, by default the same);
        a holder added again keeps its machine."""
        held = self.peers.get(pid)
        host = held.host if held is not None else f"10.0.0.{len(self.peers) + 1}"
        self.peers[pid] = Holder(pid, host, name)
        self.peers[pid].games["aurora"] = GameInfo(
            "aurora", "1.0", lists.total_size, lists.manifest_hash
        )
        self.sends[pid] = sends or lists

    @property
    def self_id(self) -> str:
        return self._self_id

    def holders(self, game_id: str, version: str, *, partial: bool = False) -> list[Source]:
        return list(self.peers.values())

    def known(self) -> list[Source]:
        return list(self.peers.values())

    def is_present(self, peer_id: str) -> bool:
        return True

    async def request(self, peer: Source, message: Message, timeout: float) -> Message:
        assert isinstance(message, GetGame)
        self.asked.append(peer.peer_id)
        return GameManifest("aurora", "1.0", self.sends[peer.peer_id].to_json())


def small_manifest(tmp_path: Path, seed: int) -> Manifest:
    """The manifest of a small real root whose bytes follow from ``seed``."""
    root = tmp_path / f"root{seed}"
    root.mkdir()
    (root / "a.eti").write_bytes(hashlib.sha256(str(seed).encode()).digest() * 100)
    (root / "version.ini").write_text("1.0\n")
    return build_manifest(root)
