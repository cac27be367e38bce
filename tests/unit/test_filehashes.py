"""Per-file hashes: computed from a provider's stream, and held to by install.

The hashes come from one streamed pass through a real provider over real
archives, and must equal the BLAKE3 of each file a real unpack writes. An
install whose catalog lists other hashes, or another set of files, fails with
one sentence naming the file, and leaves no trace in the game root.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import blake3
import pytest

from lanspread_core.archive.filehashes import FileCheck, tree_hashes
from lanspread_core.archive.listing import check_entries
from lanspread_core.errors import VerificationError
from lanspread_core.install.transactions import Transactions
from lanspread_core.library.catalog import CatalogGame
from lanspread_core.library.layout import INSTALLING, LOCAL, root_archives
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import load_registry
from lanspread_core.plugin.selection import build_provider
from lanspread_fixture.gamesets import create_set
from support.data import RAR_FIXTURES
from support.trees import tree

REGISTRY = load_registry()
GAME = "aurora"


def hashes_on_disk(folder: Path) -> dict[str, str]:
    """BLAKE3 of every file under ``folder``, by POSIX path: what an unpack wrote."""
    return {
        p.relative_to(folder).as_posix(): blake3.blake3(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def games(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("filehashes")
    create_set(root / "rar", "alpha", size=3 << 20)
    create_set(root / "fixture", "alpha", size=3 << 20, fmt="fixture")
    return root


@pytest.mark.parametrize(
    ("provider", "fmt"), [("libarchive", "rar"), ("unrar", "rar"), ("fixture", "fixture")]
)
def test_streamed_hashes_equal_the_hashes_of_the_unpacked_tree(
    tmp_path: Path, games: Path, provider: str, fmt: str
) -> None:
    impl = build_provider(REGISTRY, provider)
    archives = root_archives(games / fmt / GAME)
    impl.unpack(archives, tmp_path / "out")
    on_disk = hashes_on_disk(tmp_path / "out")
    assert len(on_disk) >= 3
    assert tree_hashes(impl, archives) == on_disk
    assert not list(games.glob(f"{fmt}/{GAME}/local"))  # nothing was extracted by hashing


@pytest.mark.parametrize("name", ["rar5-subdirs.rar", "rar3-subdirs.rar", "unicode.rar"])
def test_streamed_hashes_of_shared_rar_archives(tmp_path: Path, name: str) -> None:
    impl = build_provider(REGISTRY, "unrar")  # reads solid RAR3 too
    archives = [RAR_FIXTURES / name]
    impl.unpack(archives, tmp_path / "out")
    assert tree_hashes(impl, archives) == hashes_on_disk(tmp_path / "out")


def test_a_listing_must_name_exactly_the_listed_files(games: Path) -> None:
    impl = build_provider(REGISTRY, "fixture")
    archives = root_archives(games / "fixture" / GAME)
    listing = check_entries(impl.entries(archives))
    hashes = tree_hashes(impl, archives, listing)
    FileCheck(hashes, "the stream from peer b (12345678)").check_listing(listing)
    first = sorted(hashes)[0]
    lacking = {k: v for k, v in hashes.items() if k != first}
    with pytest.raises(VerificationError) as extra:
        FileCheck(lacking, "the stream from peer b (12345678)").check_listing(listing)
    assert str(extra.value) == (
        f"the stream from peer b (12345678) has {first!r}, which the catalog does not list;"
        " not installing it"
    )
    with pytest.raises(VerificationError, match=r"lacks 'more/game\.bin', which the catalog lists"):
        FileCheck({**hashes, "more/game.bin": "0" * 64}, "the stream").check_listing(listing)


def _transactions(tmp_path: Path, games: Path) -> tuple[Transactions, Path]:
    folder = tmp_path / "games"
    shutil.copytree(games / "fixture", folder)
    state = StateDir(tmp_path / "state").ensure()
    return Transactions(folder, state, REGISTRY, provider="fixture"), folder / GAME


def _catalog_game(games: Path) -> CatalogGame:
    impl = build_provider(REGISTRY, "fixture")
    files = tree_hashes(impl, root_archives(games / "fixture" / GAME))
    version = (games / "fixture" / GAME / "version.ini").read_text().strip()
    return CatalogGame(GAME, "Aurora", version, files=files)


def test_an_install_holds_the_tree_to_the_catalogs_hashes(tmp_path: Path, games: Path) -> None:
    tx, root = _transactions(tmp_path, games)
    trusted = _catalog_game(games)
    tx.install(GAME, trusted=trusted)
    assert hashes_on_disk(root / LOCAL) == trusted.files


def test_an_install_with_a_different_file_fails_naming_it_and_leaves_nothing(
    tmp_path: Path, games: Path
) -> None:
    tx, root = _transactions(tmp_path, games)
    trusted = _catalog_game(games)
    victim = sorted(trusted.files)[-1]
    before = tree(root)
    lying = replace(trusted, files={**trusted.files, victim: "ab" * 32})
    with pytest.raises(VerificationError) as failed:
        tx.install(GAME, trusted=lying)
    message = str(failed.value)
    assert message.startswith(f"{victim!r} in the download of {GAME} has BLAKE3 ")
    assert message.endswith("not the abababababab… the catalog lists; not installing it")
    assert "\n" not in message
    assert not (root / LOCAL).exists() and not (root / INSTALLING).exists()
    assert tree(root) == before  # the archives and version.ini stay, nothing else is left
    assert not tx.state.intent_path(GAME).exists()


def test_an_install_with_a_file_the_catalog_does_not_list_writes_nothing(
    tmp_path: Path, games: Path
) -> None:
    tx, root = _transactions(tmp_path, games)
    trusted = _catalog_game(games)
    dropped = sorted(trusted.files)[0]
    fewer = replace(trusted, files={k: v for k, v in trusted.files.items() if k != dropped})
    with pytest.raises(VerificationError, match=f"has {dropped!r}, which the catalog does not"):
        tx.install(GAME, trusted=fewer)
    assert not (root / LOCAL).exists() and not (root / INSTALLING).exists()


def test_hashes_of_another_version_are_not_held_to(tmp_path: Path, games: Path) -> None:
    tx, root = _transactions(tmp_path, games)
    trusted = _catalog_game(games)
    other = replace(trusted, version="9.9", files=dict.fromkeys(trusted.files, "cd" * 32))
    tx.install(GAME, trusted=other)  # these archives are not the version the hashes are for
    assert (root / LOCAL).is_dir()


def test_a_file_listed_twice_counts_as_its_last_copy(tmp_path: Path) -> None:
    from lanspread_fixture.fixtureformat import FixtureWriter

    games = tmp_path / "games"
    root = games / "twice"
    root.mkdir(parents=True)
    with FixtureWriter(root / "data.eti") as writer:
        writer.add_file("a.txt", b"first copy")
        writer.add_file("b.txt", b"only copy")
        writer.add_file("a.txt", b"second copy")
    (root / "version.ini").write_text("1\n")
    impl = build_provider(REGISTRY, "fixture")
    hashes = tree_hashes(impl, root_archives(root))
    assert hashes["a.txt"] == blake3.blake3(b"second copy").hexdigest()
    tx = Transactions(games, StateDir(tmp_path / "state").ensure(), REGISTRY, provider="fixture")
    tx.install("twice", trusted=CatalogGame("twice", "Twice", "1", files=hashes))
    assert (root / LOCAL / "a.txt").read_bytes() == b"second copy"
    assert hashes_on_disk(root / LOCAL) == hashes
