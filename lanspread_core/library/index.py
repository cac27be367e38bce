"""The library: which games this peer holds, in what state, with cached manifests.

A full scan of a big games directory must stay cheap, because it runs at start,
after every file-system event burst and every few minutes (DESIGN §4). So each
root gets a *fingerprint* built from one ``scandir`` of the root: for every
root-level entry except ``local/`` and reserved names, its name, type, size,
``mtime_ns`` and ``ctime_ns``, plus whether ``local/`` is a directory. The
``version.ini`` mtime is in there as a root-level entry. ``ctime_ns`` is not in
DESIGN §4's list; it is added because the kernel sets it on every write and
rename, so a rewrite that restores an old mtime (``cp -p``, ``rsync -t``) is
still seen. An unchanged fingerprint reuses the cached version, size and
manifest; only new or changed roots are walked and hashed, and within a changed
root the root-level files whose own fingerprint entry is unchanged keep their
chunk hashes.

Known limit: changes deeper than the root level (a file rewritten inside a
subfolder of the download) do not change the fingerprint. Archives live at the
root, and a stale manifest cannot hurt a downloader, which verifies every chunk.

Persistence. The index (``StateDir.library_index``, replaced atomically) holds
each root's fingerprint, version, size and ``manifest_hash``, plus
``library_rev``. Manifests themselves live beside it, one file per
``manifest_hash`` (:class:`ManifestStore`): a multi-terabyte library has tens of
megabytes of chunk hashes, which must not be rewritten (or kept in memory) on
every change. Both are caches: anything unreadable is a miss and gets rehashed.

Concurrency. Methods are thread-safe. Scans of one game are serialized by a
per-game lock, but different games scan in parallel, and at most one root is
hashed at a time (hashing is disk- or CPU-bound; two at once only thrash). So a
long hash of a game being copied in does not hold up a rescan of another game,
and readers (:meth:`Library.games`) never wait for a hash.

``library_rev`` goes up by one with every change to any game's state as it is
committed (a refresh that changes several games raises it several times), so a
``(rev, games)`` pair from :meth:`Library.snapshot` always names one content.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lanspread_core.errors import LanspreadError
from lanspread_core.library import layout
from lanspread_core.library.catalog import Catalog, valid_game_id
from lanspread_core.library.manifest import (
    ALGO,
    CHUNK_SIZE,
    FileEntry,
    Manifest,
    ManifestError,
    build_manifest,
    chunk_size_for,
)
from lanspread_core.library.statedir import StateDir
from lanspread_core.library.versionini import VersionFileError, read_version
from lanspread_core.system.atomic import write_json_atomic

log = logging.getLogger(__name__)

INDEX_FORMAT = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: (name, kind, size, mtime_ns, ctime_ns) of one root-level entry.
FingerprintEntry = tuple[str, str, int, int, int]
#: (local/ is a directory, root-level entries sorted by name).
Fingerprint = tuple[bool, tuple[FingerprintEntry, ...]]


class LibraryError(LanspreadError):
    pass


def is_root_name(name: str) -> bool:
    """Whether a folder in the games dir can be a game root (others are ignored)."""
    return valid_game_id(name) and not name.startswith(".") and not layout.is_reserved(name)


@dataclass(frozen=True)
class GameState:
    """One game as this peer sees it; what front-ends list and peers are told."""

    id: str
    name: str
    catalog_version: str | None
    local_version: str | None
    downloaded: bool
    installed: bool
    availability: layout.Availability
    size: int
    manifest_hash: str | None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "version": self.local_version,
            "catalog_version": self.catalog_version,
            "downloaded": self.downloaded,
            "installed": self.installed,
            "availability": self.availability.value,
            "size": self.size,
            "manifest_hash": self.manifest_hash,
        }
        if self.error:
            data["error"] = self.error
        return data


@dataclass(frozen=True)
class RootScan:
    """What a scan found in one root; cached in the index under its fingerprint.

    ``fingerprint`` is None when the root was not fully scanned (it was busy),
    which forces a real scan next time.
    """

    fingerprint: Fingerprint | None
    downloaded: bool
    installed: bool
    version: str | None
    error: str | None
    size: int
    manifest_hash: str | None

    def to_json(self) -> dict[str, Any]:
        fp = self.fingerprint
        return {
            "fingerprint": None if fp is None else [fp[0], [list(e) for e in fp[1]]],
            "downloaded": self.downloaded,
            "installed": self.installed,
            "version": self.version,
            "error": self.error,
            "size": self.size,
            "manifest_hash": self.manifest_hash,
        }

    @classmethod
    def from_json(cls, data: Any) -> RootScan:
        """Parse an index entry; any fault is a ValueError/TypeError (a cache miss)."""
        if not isinstance(data, dict):
            raise ValueError("entry is not an object")
        version, error, size = data.get("version"), data.get("error"), data.get("size")
        digest = data.get("manifest_hash")
        if not isinstance(version, str | None) or not isinstance(error, str | None):
            raise ValueError("bad version or error")
        if not isinstance(size, int) or size < 0:
            raise ValueError("bad size")
        if digest is not None and not (isinstance(digest, str) and _HEX64.match(digest)):
            raise ValueError("bad manifest_hash")
        raw_fp = data.get("fingerprint")
        fp: Fingerprint | None = None
        if raw_fp is not None:
            local, entries = raw_fp
            fp = (
                bool(local),
                tuple((str(n), str(k), int(s), int(m), int(c)) for n, k, s, m, c in entries),
            )
        return cls(
            fp,
            bool(data.get("downloaded")),
            bool(data.get("installed")),
            version,
            error,
            size,
            digest,
        )


class ManifestStore:
    """Manifests on disk, one JSON file per ``manifest_hash``, with a small LRU.

    Files are written without fsync: they are a cache, and every read is
    validated (:meth:`Manifest.from_json` recomputes the hash), so a torn file
    after a crash is only a miss that the next scan repairs.
    """

    def __init__(self, path: Path, cache_size: int = 16) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, Manifest] = OrderedDict()
        self._cache_size = cache_size
        #: (digest, chunk size) pairs :meth:`chunked_by` has confirmed
        self._chunked: set[tuple[str, int]] = set()

    def _file(self, digest: str) -> Path:
        return self.path / f"{digest}.json"

    def _remember(self, manifest: Manifest) -> None:
        with self._lock:
            self._cache[manifest.manifest_hash] = manifest
            self._cache.move_to_end(manifest.manifest_hash)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def put(self, manifest: Manifest) -> None:
        """Keep ``manifest``; a failed write is logged (the game still works this run)."""
        self._remember(manifest)
        target = self._file(manifest.manifest_hash)
        tmp = self.path / f".{manifest.manifest_hash}.{threading.get_ident()}.tmp"
        try:
            if target.exists():
                return
            self.path.mkdir(parents=True, exist_ok=True)
            tmp.write_text(json.dumps(manifest.to_json(), separators=(",", ":")))
            os.replace(tmp, target)
        except OSError as exc:
            log.warning("manifest cache %s not written: %s", target, exc)
            with contextlib.suppress(OSError):
                tmp.unlink()

    def has(self, digest: str) -> bool:
        with self._lock:
            if digest in self._cache:
                return True
        return self._file(digest).is_file()

    def chunked_by(self, digest: str, chunk_size: int) -> bool:
        """Whether the stored manifest ``digest`` has chunks of ``chunk_size``;
        read from disk once per store, then remembered."""
        if (digest, chunk_size) in self._chunked:
            return True
        manifest = self.get(digest)
        if manifest is None or manifest.chunk_size != chunk_size:
            return False
        self._chunked.add((digest, chunk_size))
        return True

    def get(self, digest: str) -> Manifest | None:
        with self._lock:
            if digest in self._cache:
                self._cache.move_to_end(digest)
                return self._cache[digest]
        try:
            manifest = Manifest.from_json(json.loads(self._file(digest).read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.warning("cached manifest %s is unusable: %s", digest, exc)
            return None
        if manifest.manifest_hash != digest:
            log.warning("cached manifest %s holds another manifest", digest)
            return None
        self._remember(manifest)
        return manifest

    def sweep(self, keep: set[str]) -> None:
        """Delete manifest files (and stray temp files) no index entry names."""
        try:
            names = os.listdir(self.path)
        except OSError:
            return
        for name in names:
            if name.endswith(".json") and name[: -len(".json")] in keep:
                continue
            if name.endswith((".json", ".tmp")):
                with contextlib.suppress(OSError):
                    os.unlink(self.path / name)


def fingerprint(root: Path) -> Fingerprint:
    """The cheap change detector of one root: a single ``scandir``, no reads."""
    entries: list[FingerprintEntry] = []
    with os.scandir(root) as it:
        for item in it:
            if layout.is_reserved(item.name):
                continue
            st = item.stat(follow_symlinks=False)
            if stat.S_ISREG(st.st_mode):
                kind, size = "f", st.st_size
            else:
                kind = "d" if stat.S_ISDIR(st.st_mode) else "l" if stat.S_ISLNK(st.st_mode) else "o"
                size = 0
            entries.append((item.name, kind, size, st.st_mtime_ns, st.st_ctime_ns))
    entries.sort()
    return layout.is_installed(root), tuple(entries)


def _download_size(root: Path) -> int:
    total = 0
    for path in layout.download_files(root):
        if path.parent == root and path.name == layout.SENTINEL:
            continue
        total += os.lstat(path).st_size
    return total


@contextlib.contextmanager
def _hash_slot(
    slot: threading.Semaphore | None, check: Callable[[], None] | None
) -> Iterator[None]:
    """Hold the one hashing slot, staying cancellable while waiting for it."""
    if slot is None:
        yield
        return
    while not slot.acquire(timeout=0.1):
        if check is not None:
            check()
    try:
        yield
    finally:
        slot.release()


def scan_root(
    root: Path,
    cached: RootScan | None,
    store: ManifestStore,
    *,
    may_hash: bool = True,
    check: Callable[[], None] | None = None,
    hash_slot: threading.Semaphore | None = None,
) -> RootScan:
    """Scan one root (blocking), reusing ``cached`` while its fingerprint matches.

    ``may_hash=False`` (a busy root) reads only cheap facts and returns an entry
    without a fingerprint, so the first scan after the operation redoes it.
    Problems become the entry's ``error`` sentence; they never escape, except
    cancellation raised by ``check``.
    """
    try:
        fp = fingerprint(root)
    except OSError as exc:
        return RootScan(None, False, False, None, f"cannot read {root}: {exc.strerror}", 0, None)
    if (
        cached is not None
        and cached.fingerprint == fp
        and (cached.manifest_hash is None or store.has(cached.manifest_hash))
        and _chunked_as_now(cached, store)
    ):
        return cached
    downloaded, installed = layout.is_downloaded(root), fp[0]
    version: str | None = None
    error: str | None = None
    digest: str | None = None
    size = 0
    if downloaded:
        try:
            version = read_version(root / layout.SENTINEL)
        except VersionFileError as exc:
            error = str(exc)
    try:
        if downloaded and version is not None and may_hash:
            reuse, reuse_chunk_size = _reusable(fp, cached, store)
            # Only reading new bytes needs the hashing slot; a root whose files
            # are all known (say, local/ appeared) is rebuilt at once.
            slot = hash_slot if _needs_hashing(fp, reuse) else None
            with _hash_slot(slot, check):
                manifest = build_manifest(
                    root, check=check, reuse=reuse, reuse_chunk_size=reuse_chunk_size
                )
            store.put(manifest)
            digest, size = manifest.manifest_hash, manifest.total_size
        else:
            size = _download_size(root)
    except ManifestError as exc:
        error = f"{root.name} cannot be shared: {exc}"
    except OSError as exc:
        error = f"cannot read {exc.filename or root}: {exc.strerror}"
    return RootScan(fp if may_hash else None, downloaded, installed, version, error, size, digest)


def _chunked_as_now(cached: RootScan, store: ManifestStore) -> bool:
    """Whether ``cached``'s manifest has the chunk size a scan gives its game now.

    The sizes changed between versions (docs/decisions.md, "Chunks sized to the
    game"), and the peers of a party must build the same manifest from the same
    files, so an index written before is not trusted for it. A game of 512 MiB
    or more has always had 4 MiB chunks: its manifest (megabytes for a big game)
    is not read for this.
    """
    if cached.manifest_hash is None:
        return True
    want = chunk_size_for(cached.size)
    return want == CHUNK_SIZE or store.chunked_by(cached.manifest_hash, want)


def _needs_hashing(fp: Fingerprint, reuse: Mapping[str, FileEntry]) -> bool:
    """Whether building the manifest will read any file (subfolders always are)."""
    return any(
        kind == "d" or (kind == "f" and name != layout.SENTINEL and name not in reuse)
        for name, kind, *_ in fp[1]
    )


def _reusable(
    fp: Fingerprint, cached: RootScan | None, store: ManifestStore
) -> tuple[dict[str, FileEntry], int]:
    """Root-level files whose fingerprint entry is unchanged keep their chunk
    hashes, and the chunk size they were hashed with (which the new manifest
    must also have for them to count).

    Deeper files have no fingerprint entry of their own, so they are always rehashed.
    """
    if cached is None or cached.manifest_hash is None or cached.fingerprint is None:
        return {}, CHUNK_SIZE
    old = store.get(cached.manifest_hash)
    if old is None or old.algo != ALGO:
        return {}, CHUNK_SIZE
    before = {e[0]: e for e in cached.fingerprint[1] if e[1] == "f"}
    unchanged = {e[0] for e in fp[1] if e[1] == "f" and before.get(e[0]) == e}
    return {f.path: f for f in old.files if f.path in unchanged}, old.chunk_size


class Library:
    """The games under ``games_dir`` as this peer sees them, with a persistent index."""

    def __init__(self, games_dir: Path, state: StateDir, catalog: Catalog) -> None:
        self.games_dir = games_dir
        # How the index names the games dir: the same folder however it was spelled.
        self._games_key = str(games_dir.resolve())
        self._state = state
        self._store = ManifestStore(state.manifests)
        self._lock = threading.Lock()  # guards the fields below
        self._catalog = catalog
        self._entries: dict[str, RootScan] = {}
        self._busy: dict[str, str] = {}
        # Games whose operation ended but that were not rescanned since: they
        # stay BUSY, so nobody sees (or is served) the state from before the
        # operation as if it were current.
        self._settling: dict[str, str] = {}
        self._states: dict[str, GameState] = {}
        self._rev = 0
        self._index_dirty = False
        self._id_locks: dict[str, threading.Lock] = {}
        self._hash_slot = threading.Semaphore(1)
        self._save_lock = threading.Lock()
        self._load_index()
        self._states = {k: s for k in self._entries if (s := self._state_for(k)) is not None}

    # -- reading -----------------------------------------------------------

    @property
    def rev(self) -> int:
        """``library_rev``: raised by every committed change to a game's state."""
        with self._lock:
            return self._rev

    def snapshot(self) -> tuple[int, list[GameState]]:
        """The rev and the games it names, read together."""
        with self._lock:
            return self._rev, [self._states[k] for k in sorted(self._states)]

    def games(self) -> list[GameState]:
        return self.snapshot()[1]

    def game(self, game_id: str) -> GameState | None:
        with self._lock:
            return self._states.get(game_id)

    def manifest(self, game_id: str) -> Manifest | None:
        """The cached manifest of a downloaded game (may read the state dir)."""
        with self._lock:
            entry = self._entries.get(game_id)
        if entry is None or entry.manifest_hash is None:
            return None
        manifest = self._store.get(entry.manifest_hash)
        if manifest is None:
            # The cached file is gone or damaged: make the next scan rehash.
            with self._lock:
                if self._entries.get(game_id) is entry:
                    self._entries[game_id] = replace(entry, fingerprint=None)
                    self._index_dirty = True
        return manifest

    # -- refreshing --------------------------------------------------------

    def refresh(
        self,
        busy: Mapping[str, str] | None = None,
        *,
        check: Callable[[], None] | None = None,
    ) -> bool:
        """Scan every root (blocking); True when any game's state changed.

        ``busy``, when given, first replaces the stored OperationTable snapshot
        (game id -> operation kind), as :meth:`set_busy`; None keeps the stored
        one (initially: nothing active). Busy roots are not hashed: an operation
        is changing them, and the scan after it ends picks up the result. A root
        another thread is rescanning right now is left to that rescan.
        """
        changed = self.set_busy(busy) if busy is not None else False
        ids = set(self._root_ids())
        with self._lock:
            ids.update(self._entries)
        for game_id in sorted(ids):
            changed |= self._rescan(game_id, check, wait=False)
        self._save_if_dirty()
        return changed

    def refresh_game(
        self,
        game_id: str,
        busy: Mapping[str, str] | None = None,
        *,
        check: Callable[[], None] | None = None,
    ) -> bool:
        """Rescan one root (blocking); True when any game's state changed.

        ``busy`` as in :meth:`refresh`. Names that cannot be game ids are ignored.
        """
        changed = self.set_busy(busy) if busy is not None else False
        if is_root_name(game_id):
            changed |= self._rescan(game_id, check, wait=True)
        self._save_if_dirty()
        return changed

    def set_busy(self, busy: Mapping[str, str]) -> bool:
        """Take a new OperationTable snapshot; recompute availability, no disk reads.

        A game whose operation ended stays BUSY until its root is rescanned
        (:meth:`refresh_game` or :meth:`refresh`): the operation changed its disk.
        """
        with self._lock:
            for game_id, kind in self._busy.items():
                if game_id not in busy and game_id in self._entries:
                    self._settling[game_id] = kind
            self._busy = dict(busy)
            for game_id in self._busy:
                self._settling.pop(game_id, None)
            changed = self._recompute_all()
        self._save_if_dirty()
        return changed

    def set_catalog(self, catalog: Catalog) -> bool:
        """Swap the catalog (e.g. after a reload); True when any game's state changed."""
        with self._lock:
            self._catalog = catalog
            changed = self._recompute_all()
        self._save_if_dirty()
        return changed

    # -- internals ---------------------------------------------------------

    def _root_ids(self) -> list[str]:
        try:
            with os.scandir(self.games_dir) as it:
                return [e.name for e in it if is_root_name(e.name) and e.is_dir()]
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise LibraryError(
                f"games dir {self.games_dir} cannot be read: {exc.strerror}"
            ) from exc

    def _id_lock(self, game_id: str) -> threading.Lock:
        with self._lock:
            return self._id_locks.setdefault(game_id, threading.Lock())

    def _rescan(self, game_id: str, check: Callable[[], None] | None, *, wait: bool) -> bool:
        lock = self._id_lock(game_id)
        if not lock.acquire(blocking=wait):
            return False
        try:
            with self._lock:
                cached = self._entries.get(game_id)
                busy = game_id in self._busy
            root = self.games_dir / game_id
            entry: RootScan | None
            if not root.is_dir():
                entry = None
            elif busy:
                entry = cached or scan_root(root, None, self._store, may_hash=False)
            else:
                entry = scan_root(root, cached, self._store, check=check, hash_slot=self._hash_slot)
            return self._commit(game_id, entry, stored=entry is cached)
        finally:
            lock.release()

    def _commit(self, game_id: str, entry: RootScan | None, *, stored: bool) -> bool:
        """Publish one root's scan; bump the rev if its GameState changed.

        ``stored``: the entry is the one already held (nothing new on disk).
        """
        with self._lock:
            if game_id not in self._busy:
                settled = self._settling.pop(game_id, None) is not None
            else:
                settled = False
            if stored and not settled:
                return False
            if entry is None:
                self._entries.pop(game_id, None)
            else:
                self._entries[game_id] = entry
            self._index_dirty = self._index_dirty or not stored
            state = self._state_for(game_id)
            if state == self._states.get(game_id):
                return False
            if state is None:
                del self._states[game_id]
            else:
                self._states[game_id] = state
            self._rev += 1
            return True

    def _recompute_all(self) -> bool:
        """Recompute every GameState (caller holds ``_lock``); one rev bump if any changed."""
        states = {k: s for k in self._entries if (s := self._state_for(k)) is not None}
        if states == self._states:
            return False
        self._states = states
        self._rev += 1
        self._index_dirty = True  # the rev is persisted
        return True

    def _state_for(self, game_id: str) -> GameState | None:
        entry = self._entries.get(game_id)
        if entry is None:
            return None
        game = self._catalog.get(game_id)
        # An entry with an error is never Ready: its version does not count as matching.
        version_matches = game is not None and entry.error is None and entry.version == game.version
        return GameState(
            id=game_id,
            name=game.name if game else game_id,
            catalog_version=game.version if game else None,
            local_version=entry.version,
            downloaded=entry.downloaded,
            installed=entry.installed,
            availability=layout.availability(
                in_catalog=game is not None,
                downloaded=entry.downloaded,
                installed=entry.installed,
                version_matches=version_matches,
                busy=self._busy.get(game_id) or self._settling.get(game_id),
            ),
            size=entry.size,
            manifest_hash=entry.manifest_hash,
            error=entry.error,
        )

    def _save_if_dirty(self) -> None:
        # The index is a cache: failing to write it costs a rehash next start, not data.
        with self._save_lock:
            with self._lock:
                if not self._index_dirty:
                    return
                self._index_dirty = False
                rev, entries = self._rev, dict(self._entries)
            data = {
                "format": INDEX_FORMAT,
                "games_dir": self._games_key,
                "library_rev": rev,
                "roots": {k: e.to_json() for k, e in sorted(entries.items())},
            }
            try:
                self._state.ensure()
                write_json_atomic(self._state.library_index, data)
            except OSError as exc:
                with self._lock:
                    self._index_dirty = True
                log.warning("library index %s not saved: %s", self._state.library_index, exc)

    def _load_index(self) -> None:
        path = self._state.library_index
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            log.warning("library index %s unreadable (%s); rescanning everything", path, exc)
            self._rev = _restart_rev()
            return
        rev = data.get("library_rev") if isinstance(data, dict) else None
        if not isinstance(rev, int) or data.get("format") != INDEX_FORMAT:
            log.warning("library index %s has an unknown format; rescanning everything", path)
            self._rev = _restart_rev()
            return
        self._rev = rev
        roots = data.get("roots")
        if data.get("games_dir") == self._games_key and isinstance(roots, dict):
            for game_id, raw in roots.items():
                try:
                    if is_root_name(game_id):
                        self._entries[game_id] = RootScan.from_json(raw)
                except (ValueError, TypeError) as exc:
                    log.warning("library index entry %r dropped: %s", game_id, exc)
        # Another games dir's fingerprints say nothing about this one: dropped above.
        self._store.sweep({e.manifest_hash for e in self._entries.values() if e.manifest_hash})


def _restart_rev() -> int:
    """A rev for a lost index: seconds since the epoch exceed any count of changes."""
    return int(time.time())


__all__ = [
    "GameState",
    "Library",
    "LibraryError",
    "ManifestStore",
    "RootScan",
    "fingerprint",
    "is_root_name",
    "scan_root",
]
