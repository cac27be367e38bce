"""The web page in a real browser: Debian's chromium through Playwright, two real peers.

Peer ``a`` serves the page (``lanspread peer --ui web``) and starts with no
games; peer ``b`` holds the alpha set. The tests click what a person clicks,
in order (download, uninstall, stream-install, cancel, reload, peers, logs)
and check the disk, not only the page. Downloads are slowed by stopping the
source most of the time (SIGSTOP/SIGCONT), so a bar can be seen, cancelled
and reloaded on a fast loopback. Screenshots go to the run's output folder.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support.peerproc import LOOPBACK, PeerProc, sources_of
from support.trees import tree

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="needs playwright for the browser tests: run `make test`"
)
expect = sync_api.expect

pytestmark = [pytest.mark.needs("chromium"), pytest.mark.timeout(300)]

MiB = 1 << 20
SIZE = 96 * MiB
CHROMIUM = "/usr/bin/chromium"
WEB = ["--ui", "web", "--web-listen", "127.0.0.1:0"]


class Throttle:
    """Slow a peer down by keeping it stopped most of the time (a real peer, slowed)."""

    def __init__(self, peer: PeerProc, run: float = 0.02, pause: float = 0.25) -> None:
        self.pgid = peer.proc.pid  # its own session: the group is the peer
        self.run, self.pause = run, pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.is_set():
            os.killpg(self.pgid, signal.SIGSTOP)
            self._stop.wait(self.pause)
            os.killpg(self.pgid, signal.SIGCONT)
            time.sleep(self.run)

    def __enter__(self) -> Throttle:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        os.killpg(self.pgid, signal.SIGCONT)


def web_url(peer: PeerProc, timeout: float = 20) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(r"Web page: (http://\S+)", peer.stderr())
        if found:
            return found.group(1)
        time.sleep(0.05)
    raise AssertionError(f"the peer printed no web page address: {peer.stderr()[-2000:]}")


class Party:
    def __init__(self, root: Path, a: PeerProc, b: PeerProc, url: str, shots: Path) -> None:
        self.root, self.a, self.b, self.url, self.shots = root, a, b, url, shots
        self.origin = url.split("/?")[0]
        self.token = url.split("token=")[1]
        self.page: Any = None

    def card(self, name: str) -> Any:
        return self.page.get_by_role("article", name=name)

    def shot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=path, full_page=True)
        return path

    def games(self) -> dict[str, dict[str, Any]]:
        return {g["id"]: g for g in self.a.ok("list-games")["games"]}

    def request(
        self, method: str, path: str, body: dict[str, Any] | None = None, **headers: str
    ) -> tuple[int, str]:
        host, port = self.origin.removeprefix("http://").split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data, headers={"Host": f"{host}:{port}", **headers})
        reply = conn.getresponse()
        text = reply.read().decode()
        conn.close()
        return reply.status, text


@pytest.fixture(scope="module")
def party(tmp_path_factory: pytest.TempPathFactory, game_sets: Any) -> Iterator[Party]:
    root = tmp_path_factory.mktemp("web")
    catalog = root / "catalog.json"
    for name in ("a", "b"):
        (root / name / "games").mkdir(parents=True)
    game_sets.create(root / "b" / "games", "alpha", catalog=catalog, size=SIZE)
    shots = root / "screenshots"
    shots.mkdir()
    with (
        PeerProc(root / "b", args=[*LOOPBACK, "--name", "bob"], catalog=catalog) as b,
        PeerProc(
            root / "a",
            args=[*LOOPBACK, "--name", "alice", "--peer", b.control, *WEB],
            catalog=catalog,
        ) as a,
        sync_api.sync_playwright() as pw,
    ):
        sources_of(a, "aurora", 1, timeout=20)
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-background-networking", "--disable-gpu"],
        )
        party = Party(root, a, b, web_url(a), shots)
        party.page = browser.new_page(viewport={"width": 1280, "height": 900})
        party.page.goto(party.url)
        party.page.wait_for_selector("html[data-ready='1']")
        try:
            yield party
        finally:
            browser.close()
    for name in ("a", "b"):  # the games: only the screenshots are worth keeping
        shutil.rmtree(root / name, ignore_errors=True)


def _progress(card: Any) -> Any:
    return card.get_by_role("progressbar")


def test_download_from_a_card_ends_ready_and_installed(party: Party) -> None:
    card = party.card("Aurora Assault")
    expect(card).to_contain_text("Available from 1 peer")
    with Throttle(party.b):
        card.get_by_role("button", name="Download", exact=True).click()
        expect(_progress(card)).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        expect(card).to_contain_text("bob")  # the source, by name, with its rate
        party.shot("download-running")
    expect(card.get_by_role("button", name="Uninstall")).to_be_visible(timeout=120_000)
    expect(card).to_contain_text("Ready")
    expect(card).to_contain_text("Sharing")
    expect(_progress(card)).to_be_hidden()
    party.shot("download-done")
    # the same tree as a local install of the same archives
    party.b.ok("install", game_id="aurora", wait=True, timeout=120)
    mine, theirs = party.root / "a/games/aurora/local", party.root / "b/games/aurora/local"
    assert tree(mine) == tree(theirs) != {}


def test_uninstall_asks_and_names_the_users_file(party: Party) -> None:
    local = party.root / "a/games/aurora/local"
    (local / "saves").mkdir()
    (local / "saves" / "slot1.sav").write_bytes(b"level 3")
    card = party.card("Aurora Assault")
    card.get_by_role("button", name="Uninstall").click()
    dialog = party.page.get_by_role("dialog")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text("You added 1 file since the install")
    expect(dialog).to_contain_text("saves/slot1.sav")
    party.shot("uninstall-dialog")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    time.sleep(0.5)  # a wrongly sent uninstall would have started by now
    assert (local / "saves" / "slot1.sav").read_bytes() == b"level 3"
    assert party.games()["aurora"]["installed"] is True

    card.get_by_role("button", name="Uninstall").click()
    party.page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    expect(card.get_by_role("button", name="Install", exact=True)).to_be_visible(timeout=30_000)
    assert not local.exists()


def test_stream_install_ends_installed_not_shareable(party: Party) -> None:
    card = party.card("Borealis Drift")
    card.get_by_role("button", name="Stream install").click()
    expect(card).to_contain_text("Installed, not shareable", timeout=120_000)
    expect(card.get_by_role("button", name="Uninstall")).to_be_visible()
    assert (party.root / "a/games/borealis/local").is_dir()
    assert not (party.root / "a/games/borealis/version.ini").exists()


def _remove_aurora_download(party: Party) -> None:
    card = party.card("Aurora Assault")
    card.get_by_role("button", name="Remove download").click()
    dialog = party.page.get_by_role("dialog")
    expect(dialog).to_contain_text("downloaded archives")
    dialog.get_by_role("button", name="Confirm").click()
    expect(card.get_by_role("button", name="Download", exact=True)).to_be_visible(timeout=30_000)


def test_a_reload_mid_download_shows_the_same_operation(party: Party) -> None:
    _remove_aurora_download(party)
    card = party.card("Aurora Assault")
    with Throttle(party.b, run=0.01, pause=0.5):
        card.get_by_role("button", name="Download", exact=True).click()
        expect(_progress(card)).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        party.page.reload()
        party.page.wait_for_selector("html[data-ready='1']")
        card = party.card("Aurora Assault")
        expect(_progress(card)).to_be_visible()
        expect(card.get_by_role("button", name="Cancel")).to_be_visible()
        party.shot("reloaded-mid-download")
    expect(card.get_by_role("button", name="Uninstall")).to_be_visible(timeout=120_000)
    expect(_progress(card)).to_be_hidden()
    assert (party.root / "a/games/aurora/version.ini").is_file()


def test_cancel_a_running_download_from_its_card(party: Party) -> None:
    card = party.card("Aurora Assault")
    card.get_by_role("button", name="Uninstall").click()
    party.page.get_by_role("dialog").get_by_role("button", name="Confirm").click()
    _remove_aurora_download(party)
    with Throttle(party.b, run=0.01, pause=0.5):
        card.get_by_role("button", name="Download", exact=True).click()
        expect(_progress(card)).to_have_attribute("aria-valuenow", re.compile(r"^\d+$"))
        card.get_by_role("button", name="Cancel").click()
        expect(_progress(card)).to_be_hidden(timeout=30_000)
    expect(card).to_contain_text("cancelled")
    expect(card.get_by_role("button", name="Download", exact=True)).to_be_visible()
    assert not (party.root / "a/games/aurora/version.ini").exists()
    assert party.games()["aurora"]["active"] is None


def test_a_peer_added_by_address_appears_in_the_peers_list(party: Party, tmp_path: Path) -> None:
    with PeerProc(tmp_path / "c", args=[*LOOPBACK, "--name", "carol"]) as c:
        party.page.get_by_label("Add a peer by address").fill(c.control)
        party.page.get_by_role("button", name="Add peer").click()
        peers = party.page.locator("#peers")
        expect(peers).to_contain_text("carol", timeout=20_000)
        expect(peers).to_contain_text(c.control)
        party.shot("peers")


def test_refused_requests_change_nothing_and_the_log_shows_the_warning(party: Party) -> None:
    before = party.games()["aurora"]
    command = {"cmd": "uninstall", "game_id": "aurora"}
    own = {"Origin": party.origin, "Content-Type": "application/json"}
    status, text = party.request("POST", "/api/command", command, **own)
    assert status == 403 and text.count("\n") == 1 and "token" in text
    status, text = party.request(
        "POST", "/api/command", command, **{**own, "X-Lanspread-Token": "not-the-token"}
    )
    assert status == 403
    foreign = {**own, "Origin": "http://evil.example", "X-Lanspread-Token": party.token}
    status, text = party.request("POST", "/api/command", command, **foreign)
    assert status == 403 and "Origin" in text
    # a DNS-rebinding page names its own host
    status, text = party.request("GET", "/api/snapshot", Host="evil.example:80")
    assert status == 403 and "Host" in text
    time.sleep(0.5)
    assert party.games()["aurora"] == before
    # what the page itself sends is accepted
    status, text = party.request(
        "POST", "/api/command", {"cmd": "fetch"}, **{**own, "X-Lanspread-Token": party.token}
    )
    assert status == 200, text
    log = party.page.get_by_role("list", name="Application log")
    party.page.get_by_label("Log level").select_option("30")
    expect(log).to_contain_text("WARNING")
    expect(log).to_contain_text("refused POST /api/command")
    party.shot("log-warning")


def test_unpack_logs_newest_first_and_expandable(party: Party) -> None:
    party.page.reload()
    party.page.wait_for_selector("html[data-ready='1']")
    entries = party.page.locator("#unpack details")
    expect(entries.first).to_be_visible()
    names = entries.evaluate_all("ds => ds.map(d => d.dataset.name)")
    assert names == sorted(names, reverse=True) and len(names) >= 2
    entries.first.locator("summary").click()
    expect(entries.first.locator("pre")).to_contain_text("aurora")
