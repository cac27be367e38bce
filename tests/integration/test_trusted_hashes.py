"""The catalog's hashes, not the peers, decide what is installed.

Real peer processes over loopback. A liar serves aurora with an archive of the
right size but other bytes; the catalog holds the trusted manifest hash, so the
download refuses it by name, even as the only source, and writes no
``version.ini``. A tampered stream-install sender lists the honest manifest (its
archives are the honest ones) but streams the files of other, valid archives;
the catalog's per-file hashes catch it, and an honest second sender installs
the honest tree.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest

from lanspread_core.archive.filehashes import tree_hashes
from lanspread_core.library.layout import root_archives
from lanspread_core.library.manifest import build_manifest
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import build_provider
from support.data import RAR_FIXTURES
from support.gamesets import GameSets
from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import tree

MiB = 1024 * 1024
REGISTRY = load_registry()
GAME = "aurora"

#: Runs the ``lanspread`` script given as the first argument as a peer that
#: streams the archives of ``$TAMPERED_ROOT`` instead of its own: its listing
#: and manifest stay the honest ones (attack 4 of the hostile-LAN issue).
TAMPERED_SENDER = (
    "import os, runpy, sys;"
    "from pathlib import Path;"
    "from lanspread_core.library.layout import root_archives;"
    "from lanspread_core.transfer import streamsend;"
    "other = Path(os.environ['TAMPERED_ROOT']);"
    "streamsend.root_archives = lambda root: root_archives(other);"
    "sys.argv = sys.argv[1:];"
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)

#: The same for a peer that serves the bytes of ``$LIAR_ROOT`` for every range it
#: grants: it lists and sends its honest manifest, and sends other chunk bytes.
LYING_SERVER = (
    "import os, runpy, sys;"
    "from pathlib import Path;"
    "from lanspread_core.runtime.handlers import RequestHandlers;"
    "other = Path(os.environ['LIAR_ROOT']);"
    "honest = RequestHandlers.resolve_transfer;"
    "RequestHandlers.resolve_transfer = lambda self, grant: (honest(self, grant), other)[1];"
    "sys.argv = sys.argv[1:];"
    "runpy.run_path(sys.argv[0], run_name='__main__')"
)


def trust(catalog: Path, honest_root: Path, *, files: bool = False) -> str:
    """Record ``honest_root``'s manifest hash (and with ``files`` its per-file
    hashes) as trusted for aurora in ``catalog``; return the manifest hash."""
    digest = build_manifest(honest_root).manifest_hash
    data = json.loads(catalog.read_text())
    entry = next(g for g in data["games"] if g["id"] == GAME)
    entry["hashes"] = {"manifest": digest}
    if files:
        archives = root_archives(honest_root)
        entry["hashes"]["files"] = tree_hashes(build_provider(REGISTRY, "unrar"), archives)
    catalog.write_text(json.dumps(data))
    return digest


def lie(root: Path) -> None:
    """Other bytes of the same size in aurora's biggest archive."""
    archive = max(root_archives(root), key=lambda p: p.stat().st_size)
    data = bytearray(archive.read_bytes())
    for at in range(len(data) // 3, len(data), 4096):
        data[at] ^= 0x5A
    archive.write_bytes(bytes(data))


@pytest.fixture
def games(tmp_path: Path, game_sets: GameSets) -> Path:
    """Honest aurora at b/, a liar's aurora (same size, other bytes) at a/; the
    catalog trusts the honest manifest."""
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=8 * MiB)
    game_sets.create(tmp_path / "b" / "games", "alpha", catalog=catalog, size=8 * MiB)
    liar = tmp_path / "a" / "games" / GAME
    sizes = {p.name: p.stat().st_size for p in root_archives(liar)}
    lie(liar)
    assert {p.name: p.stat().st_size for p in root_archives(liar)} == sizes
    trust(catalog, tmp_path / "b" / "games" / GAME)
    return catalog


def knows(peer: PeerProc, *others: PeerProc, timeout: float = 10) -> None:
    """Wait until ``peer`` has the library of each of ``others``, listing aurora."""
    deadline = time.monotonic() + timeout
    want = {o.peer_id for o in others}
    while time.monotonic() < deadline:
        held = {p["peer_id"] for p in peer.ok("peers")["peers"] if GAME in p["games"]}
        if want <= held:
            return
        time.sleep(0.1)
    raise AssertionError(f"{GAME} never listed by {sorted(want)}")


def test_a_lying_only_source_is_refused_by_name_and_nothing_is_written(
    tmp_path: Path, games: Path
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(tmp_path / "a", args=[*LOOPBACK, "--name", "liar"], catalog=games)
        )
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=games)
        )
        knows(c, a)
        # the liar's listing is known, and it is no source: not "Available from 1 peer"
        listed = {g["id"]: g for g in c.ok("list-games")["games"]}
        assert listed[GAME]["peers"] == [], listed[GAME]
        failed = c.call("download", game_id=GAME, wait=True, timeout=60)
        assert failed["kind"] == "error", failed
        error = failed["error"]
        assert f"peer liar ({a.peer_id[:8]}) offers {GAME} 1.0 with manifest " in error, error
        assert "not the one the catalog trusts; not using it" in error, error
        assert len(error.splitlines()) == 1
        root = c.games_dir / GAME
        assert not (root / "version.ini").exists()
        assert not root.exists(), list(root.iterdir())
        # a stream-install takes no liar either
        failed = c.call("stream-install", game_id=GAME, wait=True, timeout=60)
        assert failed["kind"] == "error" and a.peer_id[:8] in failed["error"], failed
        assert not root.exists()


def test_with_an_honest_peer_the_honest_bytes_are_installed_and_the_liar_named(
    tmp_path: Path, games: Path
) -> None:
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(tmp_path / "a", args=[*LOOPBACK, "--name", "liar"], catalog=games)
        )
        b = stack.enter_context(PeerProc(tmp_path / "b", args=LOOPBACK, catalog=games))
        c = stack.enter_context(
            PeerProc(
                tmp_path / "c",
                args=[*LOOPBACK, "--peer", a.control, "--peer", b.control],
                catalog=games,
            )
        )
        knows(c, a, b)  # the liar is listed but no source: one peer serves the game
        assert len({g["id"]: g for g in c.ok("list-games")["games"]}[GAME]["peers"]) == 1
        since = c.mark()
        result = c.ok("download", game_id=GAME, wait=True, timeout=120)
        sources = c.wait_event(lambda e: e["event"] == "download-sources", since=since)
        assert sources["sources"] == [b.peer_id], sources
        assert set(result["peers"]) == {b.peer_id}, result
        honest = tmp_path / "b" / "games" / GAME
        root = c.games_dir / GAME
        assert (root / "version.ini").read_text().strip() == "1.0"
        for archive in root_archives(honest):
            assert (root / archive.name).read_bytes() == archive.read_bytes(), archive.name
        assert f"peer liar ({a.peer_id[:8]}) offers {GAME} 1.0 with manifest" in c.stderr()


@pytest.fixture
def tampered(tmp_path: Path, game_sets: GameSets, request: pytest.FixtureRequest) -> Path:
    """A catalog trusting honest aurora's manifest and per-file hashes; honest
    aurora at a/ and b/, and the archives a/ streams instead at tampered/."""
    catalog = tmp_path / "catalog.json"
    game_sets.create(tmp_path / "a" / "games", "alpha", catalog=catalog, size=4 * MiB)
    game_sets.create(tmp_path / "b" / "games", "alpha", catalog=catalog, size=4 * MiB)
    other = tmp_path / "tampered"
    if request.param == "other bytes":
        # a real aurora of another size: the same file names, other contents
        game_sets.create(other, "alpha", size=3 * MiB)
        shutil.move(other / GAME, other / "root")
    else:
        (other / "root").mkdir(parents=True)
        shutil.copy(RAR_FIXTURES / "rar5-subdirs.rar", other / "root" / "data.eti")
    trust(catalog, tmp_path / "b" / "games" / GAME, files=True)
    return catalog


@pytest.mark.parametrize("tampered", ["other bytes", "other files"], indirect=True)
def test_a_tampered_stream_is_caught_by_file_hashes_and_an_honest_sender_completes(
    tmp_path: Path, tampered: Path
) -> None:
    catalog = tampered
    with ExitStack() as stack:
        a = stack.enter_context(
            PeerProc(
                tmp_path / "a",
                args=[*LOOPBACK, "--name", "tamperer"],
                catalog=catalog,
                env={"TAMPERED_ROOT": str(tmp_path / "tampered" / "root")},
                prefix=[sys.executable, "-c", TAMPERED_SENDER],
            )
        )
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", a.control], catalog=catalog)
        )
        sources_of(c, GAME, 1)
        failed = c.call("stream-install", game_id=GAME, wait=True, timeout=60)
        assert failed["kind"] == "error", failed
        error = failed["error"]
        assert len(error.splitlines()) == 1
        assert f"the stream from peer tamperer ({a.peer_id[:8]})" in error, error
        assert "catalog" in error and "not installing it" in error, error
        assert not (c.games_dir / GAME).exists()

        b = stack.enter_context(PeerProc(tmp_path / "b", args=LOOPBACK, catalog=catalog))
        c.ok("connect", addr=b.control)
        sources_of(c, GAME, 2)
        result = c.ok("stream-install", game_id=GAME, wait=True, timeout=60)
        assert result["peer"] == b.peer_id, result
        reference = tmp_path / "reference"
        archives = root_archives(b.games_dir / GAME)
        build_provider(REGISTRY, "unrar").unpack(archives, reference)
        assert tree(c.games_dir / GAME / "local") == tree(reference)


def lying_server(tmp_path: Path, catalog: Path) -> PeerProc:
    """A peer holding honest aurora (so it lists the trusted manifest) that serves
    the liar's bytes: the right sizes, other contents."""
    return PeerProc(
        tmp_path / "b",
        args=[*LOOPBACK, "--name", "repeater"],
        catalog=catalog,
        env={"LIAR_ROOT": str(tmp_path / "a" / "games" / GAME)},
        prefix=[sys.executable, "-c", LYING_SERVER],
    )


def test_an_only_source_repeating_the_trusted_manifest_with_other_bytes_is_named(
    tmp_path: Path, games: Path
) -> None:
    with ExitStack() as stack:
        b = stack.enter_context(lying_server(tmp_path, games))
        c = stack.enter_context(
            PeerProc(tmp_path / "c", args=[*LOOPBACK, "--peer", b.control], catalog=games)
        )
        sources_of(c, GAME, 1)
        failed = c.call("download", game_id=GAME, wait=True, timeout=60)
        assert failed["kind"] == "error", failed
        # named by id: struck for its corrupt chunks (after 3 it is dropped as a source)
        assert b.peer_id[:8] in failed["error"], failed
        assert "corrupt chunk" in failed["error"], failed
        root = c.games_dir / GAME
        assert not (root / "version.ini").exists()
        # chunks of the honest first third that verified before the third corrupt one
        # (the order is random) are kept for a resume, and nothing is installed
        if root.exists():
            assert {p.name for p in root.iterdir()} <= {a.name for a in root_archives(root)}
            assert c.ok("get-game", game_id=GAME)["paused"], "verified chunks are kept"


def test_a_repeating_liar_beside_an_honest_peer_is_struck_and_the_honest_bytes_installed(
    tmp_path: Path, games: Path
) -> None:
    honest_dir = tmp_path / "h"
    shutil.copytree(tmp_path / "b" / "games", honest_dir / "games")
    with ExitStack() as stack:
        b = stack.enter_context(lying_server(tmp_path, games))
        h = stack.enter_context(PeerProc(honest_dir, args=LOOPBACK, catalog=games))
        c = stack.enter_context(
            PeerProc(
                tmp_path / "c",
                args=[*LOOPBACK, "--peer", b.control, "--peer", h.control],
                catalog=games,
            )
        )
        sources_of(c, GAME, 2)
        since = c.mark()
        c.ok("download", game_id=GAME, wait=True, timeout=120)
        rejected = c.wait_event(lambda e: e["event"] == "download-chunk-rejected", since=since)
        assert rejected["peer_id"] == b.peer_id
        root = c.games_dir / GAME
        for archive in root_archives(honest_dir / "games" / GAME):
            assert (root / archive.name).read_bytes() == archive.read_bytes(), archive.name
