"""Every fallback of :mod:`lanspread_core.system.portable`, forced on Linux.

Each capability is a module attribute read at call time; a test turns it off
the way an OS without it would be, and checks that what the core does with it
behaves the same: bytes land at their offsets, a transfer delivers the same
bytes, a lock excludes a second holder, a link is refused, a stalled peer is
noticed, a fault point kills without clean-up. Each runs both ways, so a
difference between the native call and its fallback shows as a failure.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath

import anyio
import pytest

from lanspread_core.archive.listing import check_entries
from lanspread_core.archive.protocol import Entry, EntryKind
from lanspread_core.archive.treewriter import TreeWriter
from lanspread_core.dataplane.client import DataConnection, fetch_ranges
from lanspread_core.dataplane.errors import SourceFailed
from lanspread_core.dataplane.files import DownloadFiles
from lanspread_core.dataplane.outbound import OutboundTransfers
from lanspread_core.dataplane.server import serve_data
from lanspread_core.dataplane.tokens import TransferTokens
from lanspread_core.errors import UnsafeEntryError
from lanspread_core.library.layout import UnsafeDownloadPath
from lanspread_core.library.manifest import FileEntry, Manifest, build_manifest, chunk_ranges
from lanspread_core.library.statedir import StateDir, StateDirBusy, locked
from lanspread_core.system import portable
from lanspread_core.system.atomic import write_atomic
from lanspread_core.wire.messages import ByteRange

CHUNK = 64 * 1024


def both(flag: str) -> pytest.MarkDecorator:
    """Run a test with ``portable.<flag>`` as this OS has it, and turned off."""
    if not getattr(portable, flag):
        pytest.fail(f"this machine lacks {flag}; the native half cannot run")
    return pytest.mark.parametrize("native", [True, False], ids=["native", "fallback"])


@pytest.fixture
def force(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str, bool], None]]:
    """``force(flag, native)``: leave ``flag`` as it is, or turn it off for this test."""

    def set_flag(flag: str, native: bool) -> None:
        if not native:
            monkeypatch.setattr(portable, flag, False)

    yield set_flag


# ------------------------------------------------------------ pwrite, pread


@both("HAS_PWRITE")
def test_chunks_written_from_many_threads_land_at_their_offsets(
    native: bool, force: Callable, tmp_path: Path
) -> None:
    force("HAS_PWRITE", native)
    source = tmp_path / "source"
    (source / "sub").mkdir(parents=True)
    (source / "sub" / "big.bin").write_bytes(os.urandom(40 * CHUNK + 123))
    (source / "small.bin").write_bytes(os.urandom(5 * CHUNK))
    manifest = build_manifest(source, chunk_size=CHUNK)
    target = tmp_path / "target"
    target.mkdir()
    files = DownloadFiles(target, manifest)
    jobs = chunk_ranges(manifest)[::-1]  # back to front, from four threads at once

    def write(share: list) -> None:
        for job in share:
            with open(source / job.path, "rb") as fh:
                fh.seek(job.offset)
                files.pwrite(job.path, job.offset, fh.read(job.length))

    threads = [threading.Thread(target=write, args=(jobs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    files.close()
    for entry in manifest.files:
        assert (target / entry.path).read_bytes() == (source / entry.path).read_bytes()
    fd = os.open(target / "small.bin", os.O_RDONLY)
    try:
        assert portable.pread(fd, 10, CHUNK) == (source / "small.bin").read_bytes()[CHUNK:][:10]
        assert portable.pread(fd, 10, 5 * CHUNK) == b""
    finally:
        os.close(fd)


# --------------------------------------------- sendfile and socket timeouts


async def _serve_and_fetch(root: Path, out: Path) -> None:
    tokens = TransferTokens()
    manifest = build_manifest(root, chunk_size=CHUNK)
    jobs = chunk_ranges(manifest)
    async with anyio.create_task_group() as tg:
        endpoint = await tg.start(
            lambda task_status: serve_data(
                "127.0.0.1",
                0,
                tokens,
                lambda grant: root,
                OutboundTransfers(),
                task_status=task_status,
            )
        )
        token = tokens.issue("g", "p", [ByteRange(j.path, j.offset, j.length) for j in jobs])
        files = DownloadFiles(out, manifest)
        bad: list = []

        def run() -> None:
            fetch_ranges(
                "127.0.0.1",
                endpoint.port,
                token,
                jobs,
                files,
                cancel=threading.Event(),
                timeout=5,
                on_chunk=lambda job, ok: ok or bad.append(job),
            )

        try:
            await anyio.to_thread.run_sync(run)
        finally:
            files.close()
            tg.cancel_scope.cancel()
    assert bad == []


@pytest.mark.parametrize(
    "off",
    [
        (),
        ("HAS_SENDFILE",),
        ("HAS_TIMEVAL_TIMEOUTS",),
        ("HAS_SENDFILE", "HAS_TIMEVAL_TIMEOUTS"),
        ("HAS_TCP_CONGESTION",),
    ],
    ids=["native", "no-sendfile", "no-timeval-timeouts", "neither", "no-congestion-choice"],
)
def test_a_transfer_delivers_the_same_bytes(
    off: tuple[str, ...], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for flag in off:
        assert getattr(portable, flag), f"this machine lacks {flag}"
        monkeypatch.setattr(portable, flag, False)
    root = tmp_path / "g"
    (root / "sub").mkdir(parents=True)
    (root / "game.eti").write_bytes(os.urandom(3 * 1024 * 1024 + 77))
    (root / "sub" / "readme.txt").write_bytes(os.urandom(1000))
    out = tmp_path / "out"
    out.mkdir()
    anyio.run(_serve_and_fetch, root, out, backend="asyncio")
    for name in ("game.eti", "sub/readme.txt"):
        digest = hashlib.sha256((out / name).read_bytes()).digest()
        assert digest == hashlib.sha256((root / name).read_bytes()).digest()


@both("HAS_TIMEVAL_TIMEOUTS")
def test_a_silent_sender_is_noticed_and_a_cancel_is_prompt(
    native: bool, force: Callable, tmp_path: Path
) -> None:
    force("HAS_TIMEVAL_TIMEOUTS", native)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with DataConnection("127.0.0.1", port, timeout=0.6) as conn:
            accepted, _ = listener.accept()
            with accepted:
                conn.request("0" * 32)
                started = time.monotonic()
                with pytest.raises(SourceFailed, match="sent nothing for 0.6 s"):
                    conn.receive([], None, cancel=threading.Event(), on_chunk=lambda *_: None)
                assert 0.5 < time.monotonic() - started < 3


@both("HAS_TIMEVAL_TIMEOUTS")
def test_a_send_to_a_receiver_that_takes_nothing_gives_up(native: bool, force: Callable) -> None:
    force("HAS_TIMEVAL_TIMEOUTS", native)
    a, b = socket.socketpair()
    with a, b:
        portable.set_send_timeout(a, 0.3)
        started = time.monotonic()
        with pytest.raises(OSError):  # BlockingIOError (timeval) or TimeoutError
            while True:
                a.sendall(b"x" * 65536)
        assert time.monotonic() - started < 5


# ------------------------------------------------------ congestion control


def _congestion(sock: socket.socket) -> str:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()


@both("HAS_TCP_CONGESTION")
def test_a_data_socket_sends_with_a_loss_based_congestion_control(
    native: bool, force: Callable
) -> None:
    force("HAS_TCP_CONGESTION", native)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        before = _congestion(sock)
        chosen = portable.prefer_loss_based(sock)
        if native:
            assert chosen in portable.LOSS_BASED
            assert _congestion(sock) == chosen
        else:  # the OS keeps its own
            assert chosen is None
            assert _congestion(sock) == before


class _Refusing:
    """A socket that refuses the congestion controls named in ``refused``."""

    def __init__(self, refused: set[bytes]) -> None:
        self.refused = refused
        self.chosen: bytes | None = None

    def setsockopt(self, level: int, option: int, value: bytes) -> None:
        if value in self.refused:
            raise PermissionError(errno.EPERM, "not allowed")
        self.chosen = value


def test_reno_is_taken_where_cubic_is_not_allowed_and_none_where_neither_is() -> None:
    sock = _Refusing({b"cubic"})
    assert portable.prefer_loss_based(sock) == "reno"  # type: ignore[arg-type]
    assert sock.chosen == b"reno"
    neither = _Refusing({b"cubic", b"reno"})
    assert portable.prefer_loss_based(neither) is None  # type: ignore[arg-type]
    assert neither.chosen is None


# -------------------------------------------------------------- link walks


def _links(root: Path, outside: Path) -> None:
    (root / "real").mkdir(parents=True)
    (root / "via").symlink_to(outside)
    (root / "file.lnk").symlink_to(outside / "secret.txt")


@both("HAS_DIR_FD")
def test_no_write_or_send_follows_a_link(native: bool, force: Callable, tmp_path: Path) -> None:
    force("HAS_DIR_FD", native)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_bytes(b"secret")
    root = tmp_path / "root"
    _links(root, outside)
    before = sorted(p.name for p in outside.iterdir())

    for path in ("via/x.bin", "file.lnk"):
        manifest = Manifest(CHUNK, "blake3", (FileEntry(path, 4, ("0" * 64,)),), "0" * 64)
        with pytest.raises(UnsafeDownloadPath, match="symbolic link"):
            DownloadFiles(root, manifest)
    ok = Manifest(CHUNK, "blake3", (FileEntry("real/deep/new.bin", 4, ("0" * 64,)),), "0" * 64)
    DownloadFiles(root, ok).close()
    assert (root / "real" / "deep" / "new.bin").stat().st_size == 4
    assert sorted(p.name for p in outside.iterdir()) == before

    for rel in ("via/secret.txt", "file.lnk"):
        where = PurePosixPath(rel)
        with (
            pytest.raises(OSError) as info,
            portable.folder_beneath(root, where.parent, create=False) as folder,
        ):
            os.close(folder.open(where.name, os.O_RDONLY))
        assert info.value.errno == errno.ELOOP

    data = b"pwned"
    listing = check_entries([Entry("via/pwned.txt", EntryKind.FILE, len(data), None)])
    writer = TreeWriter(root, listing)
    with pytest.raises(UnsafeEntryError, match="link"):
        writer.begin(listing.entries[0])
    writer.close()
    assert sorted(p.name for p in outside.iterdir()) == before


# ------------------------------------------------------------------- locks


class _OfdMsvcrt:
    """A stand-in for Windows' ``msvcrt`` whose ``locking`` has the same meaning
    (lock ``nbytes`` from the file position for this open file, refuse a second
    holder at once) built on Linux open-file-description locks."""

    LK_UNLCK, LK_NBLCK = 0, 2

    @staticmethod
    def locking(fd: int, mode: int, nbytes: int) -> None:
        kind = fcntl.F_UNLCK if mode == _OfdMsvcrt.LK_UNLCK else fcntl.F_WRLCK
        flock = struct.pack("@hhqqi4x", kind, os.SEEK_CUR, 0, nbytes, 0)
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, flock)


@pytest.mark.parametrize("how", ["flock", "msvcrt", "lock file"])
def test_a_lock_excludes_a_second_holder(
    how: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    if how != "flock":
        monkeypatch.setattr(portable, "HAS_FLOCK", False)
        monkeypatch.setattr(portable, "_msvcrt", _OfdMsvcrt if how == "msvcrt" else None)
    state = StateDir(tmp_path / "state")
    busy = rf"in use by lanspread run \(pid {os.getpid()}\)"
    with (
        locked(state, "lanspread run"),
        pytest.raises(StateDirBusy, match=busy),
        locked(state, "lanspread install"),
    ):
        pass
    with locked(state, "lanspread install"):  # released on leaving
        pass
    with contextlib.suppress(RuntimeError), locked(state, "lanspread run"):
        raise RuntimeError("a failing holder releases it too")
    with locked(state, "again"):
        pass


def test_the_lock_file_left_by_a_crash_says_what_to_remove(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(portable, "HAS_FLOCK", False)
    monkeypatch.setattr(portable, "_msvcrt", None)
    state = StateDir(tmp_path / "state").ensure()
    (state.path / "lock.held").write_text("lanspread run (pid 1)")
    with pytest.raises(StateDirBusy, match="remove .*lock.held"), locked(state, "status"):
        pass


def test_flock_and_its_fallback_die_with_the_process(tmp_path: Path) -> None:
    """The native lock (and msvcrt's) is the OS's, so a killed holder frees it."""
    code = (
        "import os, sys; from pathlib import Path;"
        "from lanspread_core.library.statedir import StateDir, locked;"
        "cm = locked(StateDir(Path(sys.argv[1])), 'doomed'); cm.__enter__();"
        "print('held', flush=True); os.kill(os.getpid(), 9)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "state")], capture_output=True, text=True
    )
    assert proc.stdout == "held\n" and proc.returncode == -9
    with locked(StateDir(tmp_path / "state"), "next"):
        pass


# ---------------------------------------------------------- folder fsync


@both("HAS_DIR_FSYNC")
def test_atomic_writes_replace_the_file_with_or_without_a_folder_fsync(
    native: bool, force: Callable, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    force("HAS_DIR_FSYNC", native)
    opened_dirs: list[Path] = []
    real_open = os.open

    def spy(path, flags, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
        if flags & os.O_DIRECTORY:
            opened_dirs.append(Path(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", spy)
    target = tmp_path / "version.ini"
    target.write_text("1.0\n")
    write_atomic(target, b"2.0\n", ".version.ini.tmp")
    assert target.read_bytes() == b"2.0\n"
    assert not (tmp_path / ".version.ini.tmp").exists()
    assert opened_dirs == ([tmp_path] if native else [])


# ------------------------------------------------------------------ faults


@both("HAS_SIGKILL")
def test_a_fault_point_kills_without_clean_up(native: bool) -> None:
    code = (
        "import sys; from lanspread_core.system import portable;"
        f"portable.HAS_SIGKILL = {native};"
        "import atexit; atexit.register(lambda: print('atexit ran'));"
        "\ntry:\n    portable.kill_self()\nfinally:\n    print('finally ran')"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout == ""
    assert proc.returncode == (-9 if native else 137)
