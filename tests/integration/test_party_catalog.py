"""The party catalog between real peer processes: one organizer's signed catalog
reaches peers that started with none, follows each publish live, survives a
restart, and a catalog signed by another key or a replay is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from lanspread_fixture.gamesets import create_set
from support.cli import run_cli
from support.peerproc import LOOPBACK, PeerProc

#: generous: on a loaded machine a ping round can take seconds; nothing here is timed
DEADLINE = 60.0


def eventually(check: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"never: {what}")


def party_init(key: Path) -> str:
    out = run_cli("party", "init", "--key", key, check=True).stdout
    return out.strip().splitlines()[-1]


def publish(catalog: Path, key: Path, peer: PeerProc) -> dict[str, Any]:
    args = ["catalog", "publish", "--catalog", catalog, "--key", key, "--json"]
    out = run_cli(*args, "--state-dir", peer.workdir / "state", check=True).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def seq_of(peer: PeerProc, seq: int, since: int = 0) -> dict[str, Any]:
    return peer.wait_event(
        lambda e: e["event"] == "catalog-changed" and e["party_seq"] == seq,
        timeout=DEADLINE,
        since=since,
    )


def served_by(peer: PeerProc, game: str, holder: PeerProc) -> bool:
    games = {g["id"]: g for g in peer.ok("list-games")["games"]}
    return game in games and holder.peer_id in games[game]["peers"]


def test_a_published_catalog_reaches_every_peer_and_follows_each_publish(tmp_path: Path) -> None:
    catalog = tmp_path / "party.json"
    create_set(tmp_path / "org" / "games", "alpha", catalog=catalog)  # aurora, borealis
    own = tmp_path / "org-own.json"  # the organizer's local catalog: what it published first
    own.write_text(catalog.read_text())
    key = tmp_path / "keys" / "party.key"
    party_key = party_init(key)
    assert party_key.startswith("lsparty1-")
    with ExitStack() as stack:
        org = stack.enter_context(
            PeerProc(tmp_path / "org", args=[*LOOPBACK, "--name", "org"], catalog=own)
        )
        near = [*LOOPBACK, "--peer", org.control]
        tofu = stack.enter_context(PeerProc(tmp_path / "tofu", args=near))
        pinned = stack.enter_context(
            PeerProc(tmp_path / "pinned", args=[*near, "--party", party_key])
        )
        for guest in (tofu, pinned):  # no catalog: nothing of the organizer's is kept
            guest.wait_event(lambda e: e["event"] == "peer-library" and e["games"] == [])
            assert guest.ok("list-games")["games"] == []

        # 1. seq 1 reaches both; they list the organizer's games
        assert publish(catalog, key, org)["seq"] == 1
        signed = key.parent / "party.key.published.json"
        seq1 = tmp_path / "seq1.json"
        seq1.write_text(signed.read_text())
        for guest in (tofu, pinned):
            changed = seq_of(guest, 1)
            assert changed["games"] == ["aurora", "borealis"] and changed["party_key"] == party_key
            eventually(lambda g=guest: served_by(g, "aurora", org), "aurora listed")
        assert f"trusting party key {party_key} from peer org" in tofu.stderr()
        assert "pass --party" in tofu.stderr()
        assert "trusting party key" not in pinned.stderr()

        # 2. seq 2 names a new version: everyone updates live, and says why aurora is gone
        data = json.loads(catalog.read_text())
        old = next(g["version"] for g in data["games"] if g["id"] == "aurora")
        for game in data["games"]:
            if game["id"] == "aurora":
                game["version"] = "9.9"
                game.pop("hashes", None)
        catalog.write_text(json.dumps(data))
        marks = {p.peer_id: p.mark() for p in (org, tofu, pinned)}
        assert publish(catalog, key, org)["seq"] == 2
        for peer in (org, tofu, pinned):
            seq_of(peer, 2, since=marks[peer.peer_id])
        # the organizer's aurora is outdated now, so nobody serves it; borealis stays
        mine = {g["id"]: g for g in org.ok("list-games")["games"]}
        assert mine["aurora"]["availability"] == "outdated" and mine["aurora"]["version"] == old
        line = "aurora 9.9: no peer has it yet; the party catalog (seq 2) names it"
        note = f" (your catalog file says {old}; the party catalog wins)"
        assert mine["aurora"]["versions"] == line + note
        # (until the organizer's own library follows, it may still list aurora at the old one)
        eventually(
            lambda: tofu.call("get-game", game_id="aurora").get("error") == line,
            "aurora no longer served, and why",
        )
        assert served_by(tofu, "borealis", org)
        status = pinned.ok("status")["catalog"]
        assert status["party_seq"] == 2 and status["trusted_key"] == party_key
        shown = run_cli("status", "--state-dir", pinned.workdir / "state", check=True).stdout
        assert f"2 games: no catalog file; party catalog seq 2 of {party_key}" in shown

        # 3. a replay of seq 1, a tampered seq 2 and another key's catalog are refused
        error = tofu.call("publish-catalog", path=str(seq1))["error"]
        assert "catalog seq 1 is not newer than seq 2" in error
        tampered = json.loads(signed.read_text())
        tampered["catalog"]["games"][0]["version"] = "6.6.6"
        forged = tmp_path / "forged.json"
        forged.write_text(json.dumps(tampered))
        error = tofu.call("publish-catalog", path=str(forged))["error"]
        assert "signature of catalog seq 2 does not match" in error
        other_key = tmp_path / "keys" / "other.key"
        other = party_init(other_key)
        rogue_catalog = tmp_path / "rogue.json"
        rogue_catalog.write_text(json.dumps({"games": [{"id": "trojan", "version": "1"}]}))
        mark = org.mark()
        rogue = stack.enter_context(
            PeerProc(tmp_path / "rogue", args=[*near, "--name", "rogue", "--party", other])
        )
        publish(rogue_catalog, other_key, rogue)
        refused = org.wait_event(
            lambda e: e["event"] == "catalog-refused" and "rogue" in e["origin"],
            timeout=DEADLINE,
            since=mark,
        )
        assert other[:16] in refused["reason"] and party_key[:16] in refused["reason"]
        assert "refused the party catalog of peer rogue" in org.stderr()
        for peer in (org, tofu):
            catalog_now = peer.ok("status")["catalog"]
            assert catalog_now["party_seq"] == 2 and catalog_now["party_key"] == party_key

        # the pinned guest keeps seq 2 across a restart
        pinned.shutdown()
        again = stack.enter_context(
            PeerProc(tmp_path / "pinned", args=[*near, "--party", party_key])
        )
        assert again.ok("status")["catalog"]["party_seq"] == 2
        eventually(lambda: served_by(again, "borealis", org), "borealis listed after a restart")


def test_a_local_catalog_edited_after_start_applies_without_a_restart(tmp_path: Path) -> None:
    catalog = tmp_path / "seed.json"
    create_set(tmp_path / "seed" / "games", "alpha", catalog=catalog)
    games = json.loads(catalog.read_text())["games"]
    aurora = next(g for g in games if g["id"] == "aurora")
    others = [g for g in games if g["id"] != "aurora"]
    mine = tmp_path / "guest.json"
    mine.write_text(json.dumps({"games": others}))
    with ExitStack() as stack:
        seed = stack.enter_context(
            PeerProc(tmp_path / "seed", args=[*LOOPBACK, "--name", "seed"], catalog=catalog)
        )
        args = [*LOOPBACK, "--peer", seed.control]
        guest = stack.enter_context(PeerProc(tmp_path / "guest", args=args, catalog=mine))
        eventually(lambda: served_by(guest, "borealis", seed), "borealis listed")
        error = guest.call("download", game_id="aurora")["error"]
        assert error.startswith("aurora is not in the catalog")

        # a broken edit: one warning, and the catalog held stays
        mine.write_text('{"games": [')
        eventually(lambda: "the catalog changed but is not used" in guest.stderr(), "a warning")
        assert served_by(guest, "borealis", seed)

        # aurora at a version no peer has: the line says what the peers have
        mark = guest.mark()
        wrong = {k: v for k, v in aurora.items() if k != "hashes"}
        mine.write_text(json.dumps({"games": [*others, {**wrong, "version": "7.7"}]}))
        guest.wait_event(lambda e: e["event"] == "catalog-changed", timeout=DEADLINE, since=mark)
        line = f"aurora: your catalog says 7.7; 1 peer has {aurora['version']} (seed)"
        listed = eventually(
            lambda: {g["id"]: g for g in guest.ok("list-games")["games"]}.get("aurora"),
            "aurora listed with why",
        )
        assert listed["peers"] == [] and listed["versions"] == line
        assert guest.call("download", game_id="aurora", wait=True)["error"] == line

        # the version the seed has: it downloads, no restart
        mark = guest.mark()
        mine.write_text(json.dumps({"games": [*others, aurora]}))
        guest.wait_event(lambda e: e["event"] == "catalog-changed", timeout=DEADLINE, since=mark)
        eventually(lambda: served_by(guest, "aurora", seed), "aurora served")
        result = guest.ok("download", game_id="aurora", wait=True, timeout=120)
        assert result["installed"] == "install"
        assert (guest.games_dir / "aurora" / "version.ini").read_text().strip() == aurora["version"]


def test_the_party_key_comes_from_the_settings_and_a_bad_one_is_one_line(tmp_path: Path) -> None:
    party_key = party_init(tmp_path / "party.key")
    settings = tmp_path / "lanspread.toml"
    settings.write_text(f'party_key = "{party_key}"\n')
    env = {"LANSPREAD_CONFIG": str(settings)}
    with PeerProc(tmp_path / "p", args=LOOPBACK, env=env) as peer:
        catalog = peer.ok("status")["catalog"]
        assert catalog["trusted_key"] == party_key and catalog["party_seq"] == 0
    args = ["--games-dir", tmp_path / "g", "--state-dir", tmp_path / "s"]
    bad = run_cli("peer", *args, "--party", "lsparty1-nope")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "'lsparty1-nope' is not a party key; a party key is lsparty1- and 43" in bad.stderr


def test_publish_with_no_peer_running_waits_for_the_next_start_and_never_reuses_a_seq(
    tmp_path: Path,
) -> None:
    key = tmp_path / "party.key"
    party_key = party_init(key)
    catalog = tmp_path / "catalog.json"
    catalog.write_bytes(b'\xef\xbb\xbf{"games": [{"id": "aurora", "version": "1.0"}]}')  # a BOM
    state = tmp_path / "state"
    args = ["catalog", "publish", "--catalog", catalog, "--key", key, "--state-dir", state]
    first = run_cli(*args, check=True).stdout
    assert "seq 1 (1 games); no peer runs here; the next 'lanspread run' offers it" in first
    (tmp_path / "party.key.published.json").unlink()  # lost: the peer's copy still counts
    assert "seq 2 (1 games)" in run_cli(*args, check=True).stdout
    again = run_cli("party", "init", "--key", key)
    assert again.returncode != 0 and "a party key exists already" in again.stderr
    with PeerProc(tmp_path, args=LOOPBACK) as peer:
        held = peer.ok("status")["catalog"]
        assert held["party_seq"] == 2 and held["party_key"] == party_key
        assert [g["id"] for g in peer.ok("list-games")["games"]] == []  # nobody has aurora
        assert peer.call("get-game", game_id="aurora")["error"] == (
            "aurora 1.0: no peer has it yet; the party catalog (seq 2) names it"
        )
