"""A plugin that forgets every safety check still cannot write outside staging.

The careless provider lists and streams whatever it is told (names that climb
out, absolute paths, drive letters, links, devices, more bytes than it
listed, entries it never listed) and swallows every error its sink raises. It
is registered in a fresh registry and used the two ways archive bytes reach a
disk: install (the core's tree writer) and stream-install (the real data
server sending over loopback TCP to the real receiver). The core refuses each
case and no byte lands outside the staging folder, which is then removed.
The real ``rar5-evil-symlink-traversal.rar`` is refused the same way by every
installed provider.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import anyio
import pytest

from lanspread_core import (
    ArchiveProvider,
    Entry,
    EntryKind,
    EntrySink,
    LanspreadError,
    ProbeResult,
    ProviderRecord,
    UnsafeEntryError,
    hookimpl,
)
from lanspread_core.dataplane.errors import SourceRefused
from lanspread_core.dataplane.link import DataLink
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import Grant, TransferTokens
from lanspread_core.install.transactions import Outcome, Transactions
from lanspread_core.library.layout import INSTALLING, is_installed, root_archives
from lanspread_core.library.statedir import StateDir
from lanspread_core.plugin.registry import Registry, load_registry
from lanspread_core.plugin.selection import choose
from lanspread_core.transfer.streamrecv import receive_stream
from lanspread_core.transfer.streamsend import send_stream
from lanspread_core.wire.dataplane import encode_status
from lanspread_core.wire.streamframes import (
    DATA,
    END,
    ENTRIES,
    HEADER,
    StreamError,
    frame,
    json_frame,
)
from support.data import RAR_FIXTURES

EVIL = "rar5-evil-symlink-traversal.rar"
ESCAPED = "escaped.txt"
#: the careless provider's ``{outside}`` stands for a folder beside the games dir
OUTSIDE = "{outside}"

Item = tuple[Entry, bytes]


def item(path: str, data: bytes = b"pwned") -> Item:
    return Entry(path, EntryKind.FILE, len(data), zlib.crc32(data)), data


def bare(path: str, kind: EntryKind) -> Item:
    return Entry(path, kind, 0, None), b""


@dataclass(frozen=True)
class Case:
    """What the provider lists, and what it then streams."""

    listed: tuple[Item, ...]
    streamed: tuple[Item, ...] | None = None  # None: exactly what it listed


CASES = {
    "dot dot": Case((item("fine.txt", b"fine"), item(f"../../{ESCAPED}"))),
    "absolute path": Case((item(f"{OUTSIDE}/{ESCAPED}"),)),
    "drive letter": Case((item(f"C:/{ESCAPED}"),)),
    "backslashes": Case((item(f"..\\..\\{ESCAPED}"),)),
    "symlink then a file through it": Case((bare("up", EntryKind.SYMLINK), item(f"up/{ESCAPED}"))),
    "hard link": Case((bare("hard", EntryKind.HARDLINK),)),
    "device": Case((bare("tty", EntryKind.DEVICE),)),
    "larger than announced": Case(
        (item("big.bin", b"good"),),
        ((Entry("big.bin", EntryKind.FILE, 4, zlib.crc32(b"good")), b"good" + b"x" * 300_000),),
    ),
    "lists one thing, streams another": Case(
        (item("fine.txt", b"fine"),), (item(f"../../{ESCAPED}"),)
    ),
    "streams one entry more": Case(
        (item("fine.txt", b"fine"),), (item("fine.txt", b"fine"), item(f"../../{ESCAPED}"))
    ),
    "a device it never listed": Case(
        (item("fine.txt", b"fine"),), (bare("tty", EntryKind.DEVICE),)
    ),
}


class CarelessProvider(ArchiveProvider):
    """Checks nothing, and carries on past every error its sink raises."""

    def __init__(self, case: Case, outside: Path) -> None:
        self.listed = [self._place(i, outside) for i in case.listed]
        streamed = case.listed if case.streamed is None else case.streamed
        self.streamed = [self._place(i, outside) for i in streamed]

    @staticmethod
    def _place(it: Item, outside: Path) -> Item:
        entry, data = it
        path = entry.path.replace(OUTSIDE, outside.as_posix())
        return Entry(path, entry.kind, entry.size, entry.crc32), data

    def probe(self, archives: Sequence[Path]) -> ProbeResult:
        return ProbeResult(ok=True, format="careless")

    def entries(self, archives: Sequence[Path]) -> list[Entry]:
        return [entry for entry, _ in self.listed]

    def stream(self, archives: Sequence[Path], sink: EntrySink) -> None:
        for entry, data in self.streamed:
            with contextlib.suppress(Exception):
                sink.begin(entry)
            for start in range(0, len(data), 64 * 1024):
                with contextlib.suppress(Exception):
                    sink.write(data[start : start + 64 * 1024])
            with contextlib.suppress(Exception):
                sink.end(entry)


class CarelessPlugin:
    def __init__(self, provider: CarelessProvider) -> None:
        self.provider = provider

    @hookimpl
    def lanspread_providers(self) -> list[ProviderRecord]:
        return [ProviderRecord(name="careless", factory=lambda: self.provider)]


@dataclass
class Party:
    """A sending peer's games dir, a receiving peer's, and a folder beside them."""

    tmp: Path

    @property
    def sender(self) -> Path:
        return self.tmp / "sender"

    @property
    def receiver(self) -> Path:
        return self.tmp / "receiver"

    @property
    def outside(self) -> Path:
        return self.tmp / "outside"

    def game(self, archive: Path | None = None) -> Path:
        root = self.sender / "g"
        root.mkdir(parents=True)
        if archive is None:
            (root / "g.eti").write_bytes(b"whatever the provider says it holds")
        else:
            (root / "g.eti").write_bytes(archive.read_bytes())
        (root / "version.ini").write_text("1.0\n")
        (self.receiver).mkdir()
        self.outside.mkdir()
        return root

    def snapshot(self) -> dict[str, bytes | None]:
        """Every path under the party but the state dirs, with its bytes."""
        found: dict[str, bytes | None] = {}
        for dirpath, dirnames, filenames in os.walk(self.tmp):
            dirnames[:] = [d for d in dirnames if d != "state"]
            for name in dirnames + filenames:
                path = Path(dirpath) / name
                rel = path.relative_to(self.tmp).as_posix()
                found[rel] = path.read_bytes() if path.is_file() else None
        return found

    def assert_untouched(self, before: dict[str, bytes | None]) -> None:
        assert self.snapshot() == before
        assert not [p for p in self.tmp.rglob("*") if ESCAPED in p.name or p.name == "pwned.txt"]
        assert not (self.receiver / "g").exists()
        assert not (self.sender / "g" / INSTALLING).exists()


def transactions(games: Path, registry: Registry, provider: str = "auto") -> Transactions:
    state = StateDir(games.parent / "state" / games.name)
    return Transactions(games, state, registry, provider=provider)


def stream_install(party: Party, registry: Registry, provider: str) -> None:
    """Stream-install ``g`` from the sender to the receiver over the real data plane."""
    root = party.sender / "g"

    def sender(conn, served: Path, grant: Grant) -> int:
        def pick(archives: list[Path]) -> tuple[ArchiveProvider, ProbeResult]:
            choice = choose(registry, provider, archives)
            return choice.provider, choice.probe

        return send_stream(conn, served, pick)

    def fill(port: int, token: str, staging: Path) -> Outcome:
        with DataLink("127.0.0.1", timeout=10) as link:
            conn = link.request(port, token, pipelined=False)
            got = receive_stream(conn, staging, threading.Event(), lambda _: None, lambda _: None)
        return Outcome("g", "stream-install", None, got.files, got.bytes)

    async def main() -> LanspreadError | None:
        tokens = TransferTokens()
        async with anyio.create_task_group() as tg:
            endpoint = await tg.start(
                partial(
                    serve_data,
                    "127.0.0.1",
                    0,
                    tokens,
                    lambda grant: root,
                    OutboundTransfers(),
                    stream=sender,
                )
            )
            token = tokens.issue("g", "receiver", [], kind="stream")
            tx = transactions(party.receiver, registry)
            try:
                await anyio.to_thread.run_sync(
                    tx.stream_install, "g", partial(fill, endpoint.port, token)
                )
            except LanspreadError as exc:  # raised below, not inside the task group's
                return exc
            finally:
                tg.cancel_scope.cancel()
        return None

    failure = anyio.run(main, backend="asyncio")
    if failure is not None:
        raise failure


def careless_registry(case: Case, party: Party) -> Registry:
    return load_registry(
        extra=[("careless", CarelessPlugin(CarelessProvider(case, party.outside)))]
    )


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_install_refuses_what_a_careless_provider_streams(case: Case, tmp_path: Path) -> None:
    party = Party(tmp_path)
    party.game()
    registry = careless_registry(case, party)
    before = party.snapshot()
    with pytest.raises(UnsafeEntryError):
        transactions(party.sender, registry, "careless").install("g")
    assert not is_installed(party.sender / "g")
    party.assert_untouched(before)


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_stream_install_refuses_what_a_careless_provider_streams(
    case: Case, tmp_path: Path
) -> None:
    party = Party(tmp_path)
    party.game()
    registry = careless_registry(case, party)
    before = party.snapshot()
    with pytest.raises((SourceRefused, StreamError)) as info:
        stream_install(party, registry, "careless")
    if case.streamed is None:  # a hostile listing: refused before a byte was streamed
        assert isinstance(info.value, SourceRefused)
    party.assert_untouched(before)


def test_a_careful_case_still_installs_and_streams(tmp_path: Path) -> None:
    """The guard is no wall: a careless provider that happens to stream what it listed works."""
    party = Party(tmp_path)
    party.game()
    case = Case(
        (bare("data", EntryKind.DIR), item("data/fine.txt", b"fine"), bare(".", EntryKind.DIR))
    )
    registry = careless_registry(case, party)
    transactions(party.sender, registry, "careless").install("g")
    assert (party.sender / "g" / "local" / "data" / "fine.txt").read_bytes() == b"fine"
    stream_install(party, registry, "careless")
    assert (party.receiver / "g" / "local" / "data" / "fine.txt").read_bytes() == b"fine"


@pytest.mark.parametrize("provider", sorted(load_registry().providers))
def test_every_provider_refuses_the_evil_symlink_archive(provider: str, tmp_path: Path) -> None:
    party = Party(tmp_path)
    party.game(RAR_FIXTURES / EVIL)
    registry = load_registry()
    reads_it = registry.providers[provider].factory().probe(root_archives(party.sender / "g")).ok
    before = party.snapshot()
    # one that can read it names the unsafe entry; the others decline the format
    refusal = UnsafeEntryError if reads_it else LanspreadError
    with pytest.raises(refusal):
        transactions(party.sender, registry, provider).install("g")
    party.assert_untouched(before)
    with pytest.raises(SourceRefused):
        stream_install(party, registry, provider)
    party.assert_untouched(before)


# -- a hostile sender: the receiver checks what it receives, whatever sent it ----------

HOSTILE_SENDS: dict[str, tuple[list[Item], list[bytes]]] = {
    "a hostile listing": ([item(f"../../{ESCAPED}")], []),
    "a header never listed": (
        [item("fine.txt", b"fine")],
        [json_frame(HEADER, item(f"../../{ESCAPED}")[0].to_json())],
    ),
    "a device never listed": (
        [item("fine.txt", b"fine")],
        [json_frame(HEADER, bare("tty", EntryKind.DEVICE)[0].to_json())],
    ),
    "a file longer than listed": (
        [item("big.bin", b"good")],
        [
            json_frame(HEADER, item("big.bin", b"good")[0].to_json()),
            b"".join(frame(DATA, b"x" * 300_000)),
        ],
    ),
}


def hostile_sender(listing: list[Item], frames: list[bytes]) -> tuple[int, threading.Thread]:
    """A data port that grants any request, then sends ``listing`` and ``frames``."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        with listener:
            conn, _ = listener.accept()
            with conn:
                length = int.from_bytes(conn.recv(4, socket.MSG_WAITALL), "big")
                conn.recv(length, socket.MSG_WAITALL)
                entries = [entry.to_json() for entry, _ in listing]
                conn.sendall(encode_status())
                conn.sendall(json_frame(ENTRIES, {"format": "hostile", "entries": entries}))
                with contextlib.suppress(OSError):  # the receiver hangs up on us
                    for data in frames:
                        conn.sendall(data)
                    conn.sendall(json_frame(END, {}))

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener.getsockname()[1], thread


@pytest.mark.parametrize("sends", HOSTILE_SENDS.values(), ids=HOSTILE_SENDS.keys())
def test_the_receiver_refuses_a_hostile_sender(
    sends: tuple[list[Item], list[bytes]], tmp_path: Path
) -> None:
    party = Party(tmp_path)
    party.game()
    before = party.snapshot()
    port, thread = hostile_sender(*sends)

    def fill(staging: Path) -> Outcome:
        with DataLink("127.0.0.1", timeout=10) as link:
            conn = link.request(port, "0" * 32, pipelined=False)
            receive_stream(conn, staging, threading.Event(), lambda _: None, lambda _: None)
        raise AssertionError("a hostile stream was accepted")

    with pytest.raises(UnsafeEntryError):
        transactions(party.receiver, load_registry()).stream_install("g", fill)
    thread.join(timeout=10)
    party.assert_untouched(before)
