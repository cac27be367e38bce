"""Many processes on one machine are one vote on a game's manifest.

Issue 15 reproduced three rogue peers on one host, serving other bytes at the
catalog's version, outvoting two honest hosts. Here the "hosts" are loopback
addresses of their own (127.0.0.2 and up, all routed to ``lo`` on Linux):
two honest peers, three rogues sharing one address, and a guest. The catalog
holds no trusted hash, so the vote decides, and it counts machines.
"""

from __future__ import annotations

import json
import shutil
import sys
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_fixture.gamesets import create_set
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import digest_tree

pytestmark = pytest.mark.skipif(
    sys.platform != "linux", reason="needs 127.0.0.x addresses beyond 127.0.0.1 (Linux)"
)


def _on(address: str) -> list[str]:
    """LOOPBACK, listening on ``address`` instead of 127.0.0.1."""
    args = list(LOOPBACK)
    args[args.index("--listen") + 1] = f"{address}:0"
    return args


def test_three_peers_on_one_machine_do_not_outvote_two_machines(tmp_path: Path) -> None:
    catalog = tmp_path / "catalog.json"
    create_set(tmp_path / "h1" / "games", "alpha", catalog=catalog)
    data = json.loads(catalog.read_text())
    for game in data["games"]:
        game.pop("hashes", None)  # no trusted hash: the vote decides
    catalog.write_text(json.dumps(data))
    shutil.copytree(tmp_path / "h1" / "games", tmp_path / "h2" / "games")
    for k in range(3):  # the same version, other bytes
        games = tmp_path / f"rogue{k}" / "games"
        shutil.copytree(tmp_path / "h1" / "games", games)
        archive = sorted((games / "borealis").glob("*.eti"))[0]
        raw = bytearray(archive.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        archive.write_bytes(bytes(raw))
    with ExitStack() as stack:

        def peer(name: str, address: str, *extra: str) -> PeerProc:
            args = [*_on(address), *extra]
            return stack.enter_context(PeerProc(tmp_path / name, args=args, catalog=catalog))

        honest = [peer(f"h{i}", f"127.0.0.{i + 1}") for i in (1, 2)]
        rogues = [peer(f"rogue{k}", "127.0.0.9") for k in range(3)]
        everyone = [a for p in [*honest, *rogues] for a in ("--peer", p.control)]
        guest = peer("guest", "127.0.0.5", *everyone)
        sources_of(guest, "borealis", 5)
        result = guest.ok("download", game_id="borealis", install=False, wait=True, timeout=120)
        assert set(result["peers"]) <= {p.peer_id for p in honest}, result["peers"]
        assert digest_tree(guest.games_dir / "borealis") == digest_tree(
            honest[0].games_dir / "borealis"
        )
