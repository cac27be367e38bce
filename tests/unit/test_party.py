"""The party catalog: keys, canonical bytes, signatures, and what a peer takes."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lanspread_core.events import CatalogChanged, CatalogRefused, Event
from lanspread_core.frontends import vocabulary
from lanspread_core.library.catalog import Catalog, CatalogError, CatalogGame, parse_catalog
from lanspread_core.library.party import (
    KEY_PREFIX,
    MAX_DOCUMENT,
    PartyError,
    accepted_path,
    canonical,
    create_key,
    key_text,
    load_key,
    merged,
    parse_key,
    read_signed,
    sign,
    verify,
)
from lanspread_core.library.statedir import StateDir
from lanspread_core.runtime.partycatalog import Catalogs
from lanspread_core.runtime.versions import explain
from lanspread_core.wire.messages import GameInfo, GetPartyCatalog, Message, PartyCatalog

pytestmark = pytest.mark.anyio

CATALOG: dict[str, Any] = {"games": [{"id": "aurora", "name": "Aurora", "version": "1.0"}]}
PID = "0123456789abcdef0123456789abcdef"


def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


# -- keys ---------------------------------------------------------------------


def test_a_key_is_made_owner_only_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "party.key"
    public = create_key(path)
    assert public.startswith(KEY_PREFIX) and len(public) == len(KEY_PREFIX) + 43
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert key_text(load_key(path).public_key()) == public
    before = path.read_bytes()
    with pytest.raises(PartyError, match="exists already"):
        create_key(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("text", ["", "lsparty1-", "lsparty1-abc", "ssh-ed25519 AAAA", "x" * 52])
def test_a_bad_key_text_is_one_sentence(text: str) -> None:
    with pytest.raises(PartyError, match="is not a party key; a party key is lsparty1-"):
        parse_key(text)


def test_a_missing_or_foreign_key_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(PartyError, match="lanspread party init"):
        load_key(tmp_path / "none.key")
    (tmp_path / "junk.key").write_text("not a key")
    with pytest.raises(PartyError, match="not a party key"):
        load_key(tmp_path / "junk.key")


# -- canonical bytes and signatures ------------------------------------------------


def test_canonical_bytes_ignore_key_order_and_spacing() -> None:
    a = json.loads('{"b": 1, "a": {"y": "é", "x": [1, 2]}}')
    b = json.loads('{ "a" : { "x":[1,2], "y":"\\u00e9" }, "b":1 }')
    assert canonical(a) == canonical(b) == '{"a":{"x":[1,2],"y":"é"},"b":1}'.encode()


def test_a_signed_catalog_verifies_after_a_json_round_trip() -> None:
    doc = sign(key(), CATALOG, 3)
    again = verify(json.loads(json.dumps(doc.to_json(), indent=4)))
    assert again == doc and again.seq == 3
    assert again.catalog().get("aurora") == CatalogGame("aurora", "Aurora", "1.0")


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda d: d["catalog"]["games"][0].update(version="6.6"), "signature of catalog seq 3"),
        (lambda d: d.update(seq=4), "signature of catalog seq 4"),
        (lambda d: d.update(published="2030-01-01T00:00:00Z"), "does not match"),
        (lambda d: d.update(key=key_text(key().public_key())), "does not match"),
        (lambda d: d.update(signature="AAAA"), "does not match"),
        (lambda d: d.update(seq=0), "positive integer"),
        (lambda d: d.update(seq=True), "positive integer"),
        (lambda d: d.update(format="other/2"), "is unknown"),
        (lambda d: d.pop("signature"), "exactly"),
        (lambda d: d.update(extra=1), "exactly"),
        (lambda d: d.update(catalog=[]), "catalog object"),
    ],
)
def test_a_changed_document_is_refused(change: Any, why: str) -> None:
    document = sign(key(), CATALOG, 3).to_json()
    change(document)
    with pytest.raises(PartyError, match=why):
        verify(document)


def test_an_oversized_catalog_is_refused() -> None:
    big = {"games": [{"id": "g", "version": "1", "pad": "x" * MAX_DOCUMENT}]}
    with pytest.raises(PartyError, match="over 4,194,304"):
        verify(sign(key(), big, 1).to_json())


def test_a_catalog_nobody_could_load_is_not_signed() -> None:
    with pytest.raises(CatalogError, match="'games' list"):
        sign(key(), {"games": "none"}, 1)


def test_the_party_wins_for_an_id_both_name() -> None:
    party = parse_catalog({"games": [{"id": "aurora", "version": "2.0"}]})
    local = parse_catalog(
        {"games": [{"id": "aurora", "version": "1.0"}, {"id": "mine", "version": "1"}]}
    )
    both = merged(party, local)
    assert {g.id: g.version for g in both.games.values()} == {"aurora": "2.0", "mine": "1"}
    assert merged(None, local) is local


# -- what a running peer takes ------------------------------------------------------


class Peer:
    def __init__(self, name: str, document: dict[str, Any] | None) -> None:
        self.peer_id, self.name, self.document = PID, name, document
        self.asked = 0


class Harness:
    def __init__(self, tmp: Path, pinned: str | None = None, local: Path | None = None) -> None:
        self.events: list[Event] = []
        self.applied: list[Catalog] = []
        self.state = StateDir(tmp / "state")
        self.catalogs = Catalogs(self.state, local, pinned, PID, self.apply, self.events.append)
        self.catalogs.load()
        self.spawned: list[Any] = []
        self.catalogs.attach(self.request, lambda f, *a: self.spawned.append((f, a)))

    async def apply(self, catalog: Catalog) -> None:
        self.applied.append(catalog)

    async def request(self, peer: Peer, message: Message) -> Message:
        assert isinstance(message, GetPartyCatalog)
        peer.asked += 1
        assert peer.document is not None
        return PartyCatalog(peer.document)

    async def run_spawned(self) -> None:
        while self.spawned:
            func, args = self.spawned.pop(0)
            await func(*args)

    def refusals(self) -> list[str]:
        return [e.reason for e in self.events if isinstance(e, CatalogRefused)]


async def test_first_use_is_trusted_then_only_newer_seqs_of_that_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    organizer, other = key(), key()
    h = Harness(tmp_path)
    one = Peer("org", sign(organizer, CATALOG, 1).to_json())
    h.catalogs.offered(one, key_text(organizer.public_key()), 1)
    await h.run_spawned()
    assert h.catalogs.advert() == (key_text(organizer.public_key()), 1)
    assert "trusting party key lsparty1-" in caplog.text and "from peer org" in caplog.text
    assert isinstance(h.events[-1], CatalogChanged) and h.events[-1].games == ["aurora"]
    assert read_signed(accepted_path(h.state)) == h.catalogs.party  # stored: survives a restart
    # another key is not even fetched; an advert of the seq held is not either
    rogue = Peer("rogue", sign(other, CATALOG, 9).to_json())
    h.catalogs.offered(rogue, key_text(other.public_key()), 9)
    h.catalogs.offered(one, key_text(organizer.public_key()), 1)
    assert not h.spawned and rogue.asked == 0
    assert "trusts lsparty1-" in h.refusals()[-1]


async def test_a_peer_that_advertises_a_newer_seq_but_sends_an_old_one_is_refused(
    tmp_path: Path,
) -> None:
    organizer = key()
    text = key_text(organizer.public_key())
    h = Harness(tmp_path)
    await h.catalogs.offer(sign(organizer, CATALOG, 5).to_json(), None)
    liar = Peer("liar", sign(organizer, {"games": []}, 4).to_json())
    h.catalogs.offered(liar, text, 7)
    await h.run_spawned()
    assert liar.asked == 1 and h.catalogs.advert() == (text, 5)
    assert "catalog seq 4 is not newer than seq 5" in h.refusals()[-1]
    # said once a minute per cause and peer, but refused every time
    h.catalogs.offered(liar, text, 7)
    await h.run_spawned()
    assert liar.asked == 2 and len(h.refusals()) == 1


async def test_a_pinned_key_ignores_a_stored_catalog_of_another(tmp_path: Path) -> None:
    organizer, other = key(), key()
    h = Harness(tmp_path)
    await h.catalogs.offer(sign(other, CATALOG, 2).to_json(), None)
    pinned = Harness(tmp_path, pinned=key_text(organizer.public_key()))
    assert pinned.catalogs.party is None and pinned.catalogs.trusted == key_text(
        organizer.public_key()
    )
    with pytest.raises(PartyError, match="pinned with --party"):
        await pinned.catalogs.offer(sign(other, CATALOG, 3).to_json(), None)
    await pinned.catalogs.offer(sign(organizer, CATALOG, 1).to_json(), None)
    assert pinned.catalogs.advert()[1] == 1


async def test_a_local_catalog_edit_is_applied_and_a_broken_one_keeps_the_old(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    local = tmp_path / "catalog.json"
    local.write_text(json.dumps(CATALOG))
    h = Harness(tmp_path, local=local)
    assert not await h.catalogs.reload_local()  # unchanged: nothing to do
    local.write_text(json.dumps({"games": [*CATALOG["games"], {"id": "new", "version": "1"}]}))
    assert await h.catalogs.reload_local()
    assert sorted(h.applied[-1].games) == ["aurora", "new"]
    local.write_text('{"games": [')
    assert not await h.catalogs.reload_local()
    assert sorted(h.catalogs.effective.games) == ["aurora", "new"]
    assert "the catalog changed but is not used" in caplog.text
    assert caplog.text.count("is not used") == 1


# -- versions explained ---------------------------------------------------------------


class Holder:
    def __init__(self, name: str, version: str) -> None:
        self.peer_id, self.name = name * 8, name
        self.games = {"aurora": GameInfo("aurora", version, 1, "h")}


def test_versions_are_explained_in_one_line() -> None:
    peers = [Holder("ann", "1.1"), Holder("bob", "1.1"), Holder("cy", "1.1"), Holder("dan", "0.9")]
    assert explain("aurora", "1.0", peers, party_seq=7) == (
        "aurora: the party catalog (seq 7) says 1.0; 3 peers have 1.1 (ann, bob, cy);"
        " 1 peer has 0.9 (dan)"
    )
    assert explain("aurora", "1.1", peers) is None  # someone serves it
    assert explain("aurora", "1.0", []) == "aurora 1.0: no peer has it yet"
    line = explain("aurora", "2.0", [], party_seq=3, local_version="1.0")
    assert line == (
        "aurora 2.0: no peer has it yet; the party catalog (seq 3) names it"
        " (your catalog file says 1.0; the party catalog wins)"
    )
    entry = {"availability": "remote", "peers": [], "versions": line}
    assert vocabulary.availability(entry) == line
    absent = {"availability": "absent", "peers": [], "versions": line}
    assert vocabulary.availability(absent) == f"Not downloaded — {line}"


def test_catalog_news_is_one_line() -> None:
    taken = CatalogChanged("party", ["aurora", "borealis"], "lsparty1-x", 3)
    assert vocabulary.catalog_news(taken) == "catalog: party catalog seq 3 taken (2 games)"
    edited = CatalogChanged("local", ["aurora"])
    assert vocabulary.catalog_news(edited) == "catalog: your catalog file changed (1 game)"
    refused = CatalogRefused("peer rogue (0cf42a9a)", "catalog seq 1 is not newer than seq 2")
    assert vocabulary.catalog_news(refused) == (
        "party catalog refused (peer rogue (0cf42a9a)): catalog seq 1 is not newer than seq 2"
    )
