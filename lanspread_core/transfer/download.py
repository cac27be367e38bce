"""Downloading a game from the peers that hold it, every chunk verified.

1. Ask every peer that serves the catalog version for its manifest; accept the
   manifest only when a majority agree on its hash (and it matches the
   catalog's trusted hash, when the catalog has one).
2. Pre-size the files and run :data:`STREAMS_PER_SOURCE` streams per source
   peer. A stream asks the :class:`~lanspread_core.transfer.planner.Planner` for a
   batch, opens a transfer on the control plane (a single-use token) and
   sends the request on its TCP data connection, where a receiving thread
   hashes each chunk and writes it at its offset. The next batch is asked
   for and requested while the current one arrives, on the same connection,
   so the link never idles between batches (see
   :mod:`lanspread_core.dataplane.link`). Bad chunks are fetched again
   elsewhere.
3. Commit ``version.ini`` last (``.version.ini.tmp``, fsync, rename), remove
   archives the new version no longer has, then install unless told not to.

Swarming: sources are every peer that holds the agreed manifest, whole or
partial (a peer downloading the same game lists the chunks it has verified).
The set of sources and their have-maps are re-read ten times a second, so a
peer that starts downloading after us becomes a source as soon as it holds
something, and the planner takes each chunk rarest first. This download's own
verified chunks are reported (``on_verified``) so the runtime can serve them.

A refusal (a busy source, an expired grant) is retried with back-off; a
source is dropped only when it is gone, sent bad data, or refused for a
whole minute. Cancel, a failure and a stop all keep the verified chunks and
record them (:mod:`~lanspread_core.transfer.resume`); only a discard (``cancel
--discard``) removes the payload, keeping ``local/``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import random
import shutil
import threading
import time
from collections import deque
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from lanspread_core.control.errors import PeerError
from lanspread_core.dataplane.client import DataConnection, release_thread_buffers
from lanspread_core.dataplane.errors import SourceRefused
from lanspread_core.dataplane.files import DownloadFiles
from lanspread_core.dataplane.link import DataLink
from lanspread_core.errors import Cancelled, DiskWriteError, LanspreadError
from lanspread_core.events import ChunkRejected, DownloadSources, Event, OpKind, OpProgress
from lanspread_core.library.layout import (
    RESERVED,
    SENTINEL,
    SENTINEL_DISCARDED,
    SENTINEL_TMP,
    game_root,
    is_downloaded,
    is_installed,
)
from lanspread_core.library.manifest import ChunkRange, Manifest, chunk_ranges
from lanspread_core.system.atomic import write_atomic
from lanspread_core.system.diskspace import check_free_space
from lanspread_core.system.portable import fsync_dir
from lanspread_core.transfer import resume
from lanspread_core.transfer.planner import Planner
from lanspread_core.transfer.sources import (
    AllSourcesGone,
    DownloadError,
    ManifestCache,
    PeerAccess,
    Source,
    agreed_sources,
    shown,
)
from lanspread_core.wire import havemap
from lanspread_core.wire.errors import WireError
from lanspread_core.wire.messages import TAKEN, ByteRange, OpenTransfer, TransferGrant
from lanspread_core.wire.schema import clip

log = logging.getLogger(__name__)

PROGRESS_INTERVAL = 0.25
#: streams per source peer: two TCP flows share a shaped link more evenly than
#: one (measured in the lab: 0.89-0.92 of the line against 0.85-0.88), and on a
#: fast link two receiving threads share the hashing
STREAMS_PER_SOURCE = 2
#: batches requested on a stream at once: the one arriving and the next
PIPELINE = 2
SOURCE_TIMEOUT = 15.0
#: how often the sources and their have-maps are re-read (swarming)
REFRESH_INTERVAL = 0.1
#: back-off after a refusal: first and longest wait
BACKOFF_FIRST = 0.2
BACKOFF_MAX = 2.0
#: a source that refused everything for this long is dropped
REFUSING_GIVE_UP = 60.0
#: no live source holds a missing chunk for this long: the download stops
STARVED_GIVE_UP = 10.0
#: the same, when the only peers left that hold those chunks sent them corrupt: no
#: wait for a holder to turn up makes them send good bytes, so it ends sooner
STRUCK_GIVE_UP = 3.0
#: how often the verified chunks are written to the resume record
RECORD_INTERVAL = 1.0


@dataclass
class DownloadJob:
    game_id: str
    version: str
    install: bool
    cancel: threading.Event = field(default_factory=threading.Event)
    #: the manifest hash the catalog trusts for this version (it decides, not a vote)
    trusted: str | None = None
    #: where the verified chunks are recorded for a resume (None: not recorded)
    record: Path | None = None
    #: asked on a stop: remove the payload instead of keeping it for a resume
    discard: Callable[[], bool] = lambda: False


class _Refused(DownloadError):
    """A source said no for now (busy, changing, an expired grant): ask again later."""


class _Taken(_Refused):
    """A seed sent these chunks to another peer a moment ago: get them from there."""


#: how long a chunk a seed called taken is not asked of it again (seconds)
TAKEN_DEFER = 5.0


@dataclass
class _Batch:
    """Chunks granted to one stream, requested on ``conn``; filled in as they land."""

    indices: list[int]
    jobs: list[ChunkRange]
    conn: DataConnection
    results: list[tuple[int, bool]] = field(default_factory=list)
    seconds: float = 0.0
    error: BaseException | None = None


class Download:
    """One running download into ``games_dir``, from the peers ``peers`` knows.

    :param publish: takes this download's events (sources, progress, rejected
        chunks); called on the event loop.
    """

    def __init__(
        self,
        job: DownloadJob,
        games_dir: Path,
        peers: PeerAccess,
        publish: Callable[[Event], None],
        on_verified: Callable[[Manifest, frozenset[int], frozenset[int]], None] | None = None,
        quiesce: Callable[[], AbstractAsyncContextManager[None]] | None = None,
        manifests: ManifestCache | None = None,
    ) -> None:
        self.job = job
        #: manifests the sources sent before: a repeated download does not ask again
        self._manifests = manifests
        self.games_dir = games_dir
        self.peers = peers
        self._publish = publish
        self._on_verified = on_verified
        #: stops (and waits for) uploads of this game's chunks before a discard
        self._quiesce = quiesce
        self.root = game_root(games_dir, job.game_id)
        self.created_root = False
        self.manifest: Manifest | None = None
        self.chunks: list[ChunkRange] = []
        #: chunks already verified on disk when this run started (a resume)
        self.resumed: set[int] = set()
        self._refusing_since: dict[str, float] = {}
        self._starved_since: float | None = None
        self._sources: dict[str, Source] = {}
        #: have-maps partial sources sent with their grants, by peer id
        self._heard: dict[str, frozenset[int]] = {}
        self.files: DownloadFiles | None = None
        self.planner: Planner | None = None
        self._started = time.monotonic()
        self._lock = threading.Lock()
        #: chunks verified and written, as they land (progress must not wait for a batch)
        self._verified: set[int] = set()
        self._bytes_live = 0
        self._stop_any = threading.Event()
        self._global: dict[tuple[str, int], int] = {}
        self._transfer_started = self._started
        self._transfer_seconds = 0.0

    # ---------------------------------------------------------------- run
    async def run(self) -> dict[str, Any]:
        job = self.job
        manifest, sources = await agreed_sources(
            self.peers, job.game_id, job.version, job.trusted, partial=True, cache=self._manifests
        )
        self.manifest = manifest
        self.chunks = chunk_ranges(manifest)
        self._publish(
            DownloadSources(
                job.game_id, manifest.total_size, [p.peer_id for p in sources], job.version
            )
        )
        try:
            await anyio.to_thread.run_sync(self._prepare, manifest)
            missing = manifest.total_size - sum(self.chunks[i].length for i in self.resumed)
            await anyio.to_thread.run_sync(
                check_free_space, self.games_dir, missing, f"download {job.game_id}"
            )
            await self._fetch_all(manifest, sources)
            await anyio.to_thread.run_sync(self._commit, manifest)
        except BaseException:
            with anyio.CancelScope(shield=True):
                if self.job.discard() and self._quiesce is not None:
                    async with self._quiesce():
                        await anyio.to_thread.run_sync(self._stop)
                else:
                    await anyio.to_thread.run_sync(self._stop)
            raise
        elapsed = time.monotonic() - self._started
        sources_of = self.planner.sources if self.planner else {}
        fetched = sum(s.bytes for s in sources_of.values())
        result = {
            "game_id": job.game_id,
            "version": job.version,
            # what this run fetched; with "resumed" (already on disk) it makes "total"
            "bytes": fetched,
            "total": manifest.total_size,
            "resumed": manifest.total_size - fetched,
            "seconds": round(elapsed, 3),
            "rate": fetched / elapsed if elapsed else 0.0,
            # the byte-moving phase alone, after manifests were agreed and files sized
            "transfer_seconds": round(self._transfer_seconds, 3),
            # verified bytes by source: they add up to "bytes"
            "peers": {pid: s.bytes for pid, s in sources_of.items()},
            # end-game copies that arrived second, by source (not part of "bytes")
            "duplicates": {pid: s.duplicate for pid, s in sources_of.items() if s.duplicate},
        }
        return result

    # ------------------------------------------------------------ disk side
    def _prepare(self, manifest: Manifest) -> None:
        record = resume.load(self.job.record) if self.job.record else None
        if not self.root.exists():
            self.root.mkdir(parents=True)
            self.created_root = True
        elif record is not None:
            self.created_root = record.created_root
        if is_downloaded(self.root):
            # the old version stops being "downloaded" now; it is not restored on failure
            os.replace(self.root / SENTINEL, self.root / SENTINEL_DISCARDED)
            fsync_dir(self.root)
        self.resumed = resume.verified_on_disk(record, self.root, manifest, self.chunks)
        if record is not None and not self.resumed and self.job.record:
            resume.remove(self.job.record)  # another version's chunks: they are overwritten
        self.files = DownloadFiles(self.root, manifest)
        with self._lock:
            self._verified = set(self.resumed)
            self._bytes_live = sum(self.chunks[i].length for i in self.resumed)

    def _commit(self, manifest: Manifest) -> None:
        assert self.files is not None
        self.files.close()
        keep = {f.path.split("/", 1)[0] for f in manifest.files}
        for child in self.root.iterdir():
            if child.name in keep or child.name in RESERVED or child.name == SENTINEL:
                continue
            # a stale archive of the old version would be unpacked with the new ones
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
        write_atomic(self.root / SENTINEL, f"{self.job.version}\n".encode(), SENTINEL_TMP)
        with contextlib.suppress(FileNotFoundError):
            (self.root / SENTINEL_DISCARDED).unlink()
        if self.job.record:
            resume.remove(self.job.record)

    def _stop(self) -> None:
        """The download ends before its commit: keep what verified, or discard it."""
        with self._lock:
            verified = set(self._verified)
        files = self.files
        if self.job.discard() or self.job.record is None or files is None or not verified:
            self._discard()
            return
        files.close()
        with contextlib.suppress(FileNotFoundError):
            (self.root / SENTINEL_TMP).unlink()
        self._save_record()
        log.info(
            "%s paused with %d of %d chunks verified",
            self.job.game_id,
            len(verified),
            len(self.chunks),
        )

    def _save_record(self) -> None:
        if self.job.record is None or self.manifest is None:
            return
        with self._lock:
            verified = set(self._verified)
        try:
            resume.save(
                self.job.record,
                self.root,
                self.job.version,
                self.manifest,
                verified,
                self.chunks,
                self.created_root,
            )
        except OSError as exc:  # a resume costs more then; the download goes on
            log.warning("cannot record the progress of %s: %s", self.job.game_id, exc)

    def _discard(self) -> None:
        """Remove the payload; keep ``local/`` and anything that is not the download's."""
        if self.job.record:
            resume.remove(self.job.record)
        if self.files is not None:
            self.files.close()
            self.files.remove_payload()
        with contextlib.suppress(FileNotFoundError):
            (self.root / SENTINEL_TMP).unlink()
        if self.created_root and self.root.is_dir() and not is_installed(self.root):
            with contextlib.suppress(OSError):
                shutil.rmtree(self.root)

    # ------------------------------------------------------------ transfers
    async def _fetch_all(self, manifest: Manifest, sources: list[Source]) -> None:
        chunks = self.chunks
        # ChunkRange.index counts within a file; the planner counts across the game
        self._global = {(c.path, c.offset): i for i, c in enumerate(chunks)}
        planner = Planner(
            chunks,
            [],
            streams=STREAMS_PER_SOURCE,
            done=self.resumed,
            order=random.sample(range(len(chunks)), len(chunks)),
        )
        self.planner = planner
        # a thread per stream for the whole download, apart from the shared pool
        receivers = anyio.CapacityLimiter(1000)
        total = manifest.total_size
        outcome: LanspreadError | None = None
        async with anyio.create_task_group() as tg:
            self._transfer_started = time.monotonic()

            def join(peer: Source, have: frozenset[int] | None) -> None:
                self._sources[peer.peer_id] = peer
                planner.add_source(peer.peer_id, have)
                # a partial source serves a crowd a chunk or two at a time: one stream
                for _ in range(STREAMS_PER_SOURCE if have is None else 1):
                    tg.start_soon(self._stream, peer, planner, receivers)

            for peer in sources:
                join(peer, self._offer(peer)[0])
            tg.start_soon(self._progress_loop, planner, total)
            refreshed = time.monotonic()
            while not planner.finished and outcome is None:
                if time.monotonic() - refreshed >= REFRESH_INTERVAL:
                    refreshed = time.monotonic()
                    self._refresh_sources(planner, join)
                outcome = self._verdict(planner)
                await anyio.sleep(0.05)
            self._stop_any.set()
            tg.cancel_scope.cancel()
        if outcome is not None:
            raise outcome
        self._transfer_seconds = time.monotonic() - self._transfer_started
        self._emit_progress(planner, total)

    def _offer(self, peer: Source) -> tuple[frozenset[int] | None, frozenset[int]]:
        """What ``peer`` holds of this manifest (None: all of them; empty when it
        offers another manifest or nothing readable) and what it is fetching."""
        assert self.manifest is not None
        info = peer.games.get(self.job.game_id)
        if info is None or info.manifest_hash != self.manifest.manifest_hash:
            return frozenset(), frozenset()
        try:
            have = havemap.decode(info.have, len(self.chunks))
            fetching = havemap.decode(info.fetching, len(self.chunks)) if info.fetching else None
        except WireError:
            return frozenset(), frozenset()
        return have, fetching or frozenset()

    def _refresh_sources(
        self, planner: Planner, join: Callable[[Source, frozenset[int] | None], None]
    ) -> None:
        """New holders become sources; partial sources' have-maps grow (swarming)."""
        for peer in self.peers.holders(self.job.game_id, self.job.version, partial=True):
            have, fetching = self._offer(peer)
            heard = self._heard.get(peer.peer_id)
            if have is not None and heard:
                if heard <= have:
                    del self._heard[peer.peer_id]  # its pings caught up
                else:
                    have |= heard  # its grants told of these since its last ping
            if peer.peer_id not in planner.sources and (have is None or have):
                join(peer, have)
            planner.set_have(peer.peer_id, have, fetching)

    def _verdict(self, planner: Planner) -> LanspreadError | None:
        """Why the download must stop now, if it must."""
        if self.job.cancel.is_set():
            return Cancelled(f"download of {self.job.game_id} cancelled")
        if planner.fatal:
            return DownloadError(planner.fatal)
        if not planner.live_sources():
            reasons = "; ".join(
                f"{self._who(pid)}: {s.failed}" for pid, s in planner.sources.items()
            )
            return AllSourcesGone(f"every peer serving {self.job.game_id} is gone ({reasons})")
        starved = planner.starved()
        if not starved:
            self._starved_since = None
            return None
        if self._starved_since is None:
            self._starved_since = time.monotonic()
            return None
        # bad data explains it when every starved chunk is held only by peers that
        # sent it corrupt, or by nobody left, after someone sent it corrupt
        struck = all(planner.excluded.get(i) for i in starved)
        waited = time.monotonic() - self._starved_since
        if waited <= (STRUCK_GIVE_UP if struck else STARVED_GIVE_UP):
            return None
        count = f"{len(starved)} chunk{'s' if len(starved) != 1 else ''}"
        culprits = self._culprits(planner)
        if culprits:
            return AllSourcesGone(
                f"download of {self.job.game_id} stopped: no peer left may send {count},"
                f" because {culprits}"
            )
        return AllSourcesGone(
            f"no peer left holds {count} of {self.job.game_id}"
            f" (sources: {', '.join(pid[:8] for pid in planner.sources)})"
        )

    def _culprits(self, planner: Planner) -> str:
        """The peers that sent bad data, by id and name, in one clause ('' when none)."""
        named = []
        for pid, source in planner.sources.items():
            if not source.strikes:
                continue
            what = "a corrupt chunk" if source.strikes == 1 else f"{source.strikes} corrupt chunks"
            named.append(f"{self._who(pid)} sent {what}")
        return ", ".join(named)

    def _who(self, peer_id: str) -> str:
        """A source as the user knows it: its id, and its name when it gave one
        (on one line, however hostile the name)."""
        name = shown(clip(getattr(self._sources.get(peer_id), "name", "") or ""))
        return f"{peer_id[:8]} ({name})" if name else peer_id[:8]

    async def _stream(
        self, peer: Source, planner: Planner, receivers: anyio.CapacityLimiter
    ) -> None:
        """One stream from ``peer`` for the whole download: after a refusal it waits
        (back-off) and starts again on a fresh connection."""
        delay = BACKOFF_FIRST
        while not (planner.finished or planner.sources[peer.peer_id].failed):
            if not await self._worker(peer, planner, receivers):
                return
            await anyio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, BACKOFF_MAX)

    async def _worker(
        self, peer: Source, planner: Planner, receivers: anyio.CapacityLimiter
    ) -> bool:
        """One connection from ``peer``: batches back to back; True to try again later.

        A receiving thread takes requested batches from a queue and works
        through them without pause; this task keeps one batch requested
        ahead of the one arriving (asked for while it arrives), settles each
        batch with the planner as it comes back, and ends on the first error:
        for good when the source is gone or sent bad data, for a while when it
        refused.
        """
        source = planner.sources[peer.peer_id]
        link = DataLink(peer.host, timeout=SOURCE_TIMEOUT)
        todo: queue.SimpleQueue[_Batch | None] = queue.SimpleQueue()
        back_send, back = anyio.create_memory_object_stream[_Batch](PIPELINE)
        requested: deque[_Batch] = deque()
        again = False

        def running() -> bool:
            return not (planner.finished or source.failed or self.job.cancel.is_set())

        async with anyio.create_task_group() as tg, back, back_send:
            receive = partial(anyio.to_thread.run_sync, abandon_on_cancel=False, limiter=receivers)
            # handing back must not wait for the loop: the thread goes straight on
            loop = asyncio.get_running_loop()

            def hand_back(batch: _Batch) -> None:
                loop.call_soon_threadsafe(back_send.send_nowait, batch)

            tg.start_soon(receive, self._receive_loop, todo, hand_back)
            try:
                while running():
                    if not self.peers.is_present(peer.peer_id):
                        planner.source_failed(peer.peer_id, "left the network")
                        break
                    try:
                        while len(requested) < PIPELINE and running():
                            batch = await self._ask(peer, planner, link, bool(requested))
                            if batch is None:
                                break
                            requested.append(batch)
                            todo.put(batch)
                    except (LanspreadError, OSError) as exc:
                        again = self._source_error(planner, peer.peer_id, exc)
                        break
                    if not requested:
                        await anyio.sleep(0.05)
                        continue
                    batch = await back.receive()
                    requested.popleft()
                    if not self._settle_batch(planner, peer.peer_id, batch):
                        again = not source.failed
                        break
            except anyio.get_cancelled_exc_class():
                self._stop_any.set()  # the receiving threads stop at their next chunk
                raise
            finally:
                todo.put(None)
                with anyio.CancelScope(shield=True):
                    while requested:  # they come back received, failed or skipped
                        self._settle_batch(planner, peer.peer_id, await back.receive())
                        requested.popleft()
                link.close()
        return again and running()

    def _receive_loop(
        self, todo: queue.SimpleQueue[_Batch | None], hand_back: Callable[[_Batch], object]
    ) -> None:
        """Receive requested batches in order (worker thread); hand each back.

        After a failure the batches still queued are handed back unreceived:
        their requests went down with the connection.
        """
        failed = False
        try:
            while (batch := todo.get()) is not None:
                if failed or self._stop_any.is_set():
                    batch.error = Cancelled("not received")
                else:
                    try:
                        self._receive(batch)
                    except (LanspreadError, OSError) as exc:
                        batch.error = exc
                        failed = True
                hand_back(batch)
        finally:
            release_thread_buffers()  # a pooled thread must not keep them after the stream

    def _settle_batch(self, planner: Planner, peer_id: str, batch: _Batch) -> bool:
        """Report ``batch`` to the planner; whether the stream may go on."""
        good = self._settle(planner, peer_id, batch.results)
        # what it did not deliver; a refusal, or a batch never received because the
        # connection went down before it, is no failed attempt at those chunks
        untried = isinstance(batch.error, SourceRefused | Cancelled)
        planner.unfinished(peer_id, batch.indices, counted=not untried)
        if good:
            self._refusing_since.pop(peer_id, None)
            planner.sources[peer_id].cooling = False
        if batch.error is not None:
            self._source_error(planner, peer_id, batch.error)
            return False
        planner.sources[peer_id].note(good, batch.seconds)
        return True

    def _source_error(self, planner: Planner, peer_id: str, exc: BaseException) -> bool:
        """Deal with a stream's error; True when the source may be asked again later.

        A source is dropped only when it is gone, sent bad data (the planner
        counts strikes), or has refused everything for :data:`REFUSING_GIVE_UP`:
        a crowd makes sources busy and grants expire in queues, and that must
        not fail a download.
        """
        if isinstance(exc, Cancelled):
            return False
        if isinstance(exc, DiskWriteError):  # our disk, not the source: the download fails
            planner.fatal = str(exc)
            return False
        if not self.peers.is_present(peer_id):
            planner.source_failed(peer_id, "left the network")
            return False
        planner.sources[peer_id].cooling = True
        since = self._refusing_since.setdefault(peer_id, time.monotonic())
        if time.monotonic() - since > REFUSING_GIVE_UP:
            planner.source_failed(peer_id, f"kept refusing: {exc}")
            log.info("source %s dropped: %s", peer_id[:8], exc)
            return False
        log.debug("source %s refused for now: %s", peer_id[:8], exc)
        return True

    async def _ask(
        self, peer: Source, planner: Planner, link: DataLink, pipelined: bool
    ) -> _Batch | None:
        """Take the next batch for ``peer``, get its grant and send the request."""
        # a duplicate of another peer's chunk (end-game) is only worth it when idle
        indices = planner.next_batch(peer.peer_id, endgame=not pipelined)
        if not indices:
            return None
        jobs = [planner.chunks[i] for i in indices]
        try:
            grant = await self._open(peer, jobs)
            if grant.have:
                self._heard_have(planner, peer.peer_id, grant.have)
            if grant.granted or grant.taken:
                indices = self._part(planner, peer.peer_id, indices, grant)
                jobs = [planner.chunks[i] for i in indices]
            conn = await anyio.to_thread.run_sync(
                partial(link.request, grant.data_port, grant.token, pipelined=pipelined)
            )
        except _Taken:
            planner.defer(peer.peer_id, indices, TAKEN_DEFER)
            return None
        except BaseException:
            # nothing of these chunks arrived: no failed attempt at them
            planner.unfinished(peer.peer_id, indices, counted=False)
            raise
        return _Batch(indices, jobs, conn)

    def _heard_have(self, planner: Planner, peer_id: str, have: str) -> None:
        """A partial source's have-map, sent with its grant: fresher than its last ping."""
        try:
            chunks = havemap.decode(have, len(self.chunks))
        except WireError:
            return
        source = planner.sources.get(peer_id)
        if chunks is None or source is None or source.have is None:
            return
        self._heard[peer_id] = chunks
        planner.set_have(peer_id, source.have | chunks, source.fetching)

    @staticmethod
    def _part(
        planner: Planner, peer_id: str, indices: list[int], grant: TransferGrant
    ) -> list[int]:
        """The chunks a partial grant covers; the taken ones are left to the peers
        that got them, the rest go back to be asked for again."""
        granted, taken = grant.granted, grant.taken
        n = len(indices)
        given = set(granted)
        if (
            not granted
            or list(granted) != sorted(given)
            or granted[-1] >= n
            or any(k >= n or k in given for k in taken)
        ):
            raise _Refused(f"{peer_id[:8]} granted positions that were not asked for")
        planner.defer(peer_id, [indices[k] for k in taken], TAKEN_DEFER)
        planner.unfinished(
            peer_id, [i for k, i in enumerate(indices) if k not in given], counted=False
        )
        return [indices[k] for k in granted]

    def _settle(self, planner: Planner, peer_id: str, results: list[tuple[int, bool]]) -> int:
        good = 0
        for index, ok in results:
            if ok:
                planner.chunk_ok(peer_id, index)
                good += planner.chunks[index].length
            else:
                planner.chunk_bad(peer_id, index)
                self._publish(ChunkRejected(self.job.game_id, peer_id, index))
        return good

    async def _open(self, peer: Source, jobs: list[ChunkRange]) -> TransferGrant:
        request = OpenTransfer(
            self.peers.self_id,
            self.job.game_id,
            tuple(ByteRange(j.path, j.offset, j.length) for j in jobs),
        )
        try:
            reply = await self.peers.request(peer, request, SOURCE_TIMEOUT)
        except PeerError as exc:  # an Error reply: refused for now, or taken
            kind = _Taken if exc.code == TAKEN else _Refused
            raise kind(f"{peer.peer_id[:8]} refused the transfer: {exc}") from None
        if not isinstance(reply, TransferGrant):
            why = getattr(reply, "message", type(reply).__name__)
            kind = _Taken if getattr(reply, "code", "") == TAKEN else _Refused
            raise kind(f"{peer.peer_id[:8]} refused the transfer: {why}")
        return reply

    def _receive(self, batch: _Batch) -> None:
        """Receive, verify and write ``batch`` (worker thread); results land in it."""
        assert self.files is not None

        def on_chunk(job: ChunkRange, ok: bool) -> None:
            index = self._global[(job.path, job.offset)]
            batch.results.append((index, ok))
            if ok:
                with self._lock:
                    if index not in self._verified:
                        self._verified.add(index)
                        self._bytes_live += job.length

        started = time.monotonic()
        batch.conn.receive(batch.jobs, self.files, cancel=self._stop_any, on_chunk=on_chunk)
        batch.seconds = time.monotonic() - started
        log.debug(
            "batch of %d bytes from %s in %.3f s",
            sum(j.length for j in batch.jobs),
            batch.conn.peer,
            batch.seconds,
        )

    async def _progress_loop(self, planner: Planner, total: int) -> None:
        recorded = time.monotonic()
        reported: tuple[frozenset[int], frozenset[int]] | None = None
        while True:
            await anyio.sleep(PROGRESS_INTERVAL)
            self._emit_progress(planner, total)
            with self._lock:
                verified = frozenset(self._verified)
            fetching = frozenset(planner.in_flight)
            if self._on_verified is not None and self.manifest and (verified, fetching) != reported:
                reported = (verified, fetching)
                self._on_verified(self.manifest, verified, fetching)
            if time.monotonic() - recorded >= RECORD_INTERVAL:
                recorded = time.monotonic()
                await anyio.to_thread.run_sync(self._save_record)

    def _emit_progress(self, planner: Planner, total: int) -> None:
        with self._lock:
            done = self._bytes_live  # every verified chunk passes on_chunk before the planner
        elapsed = max(1e-6, time.monotonic() - self._started)
        per_peer = {pid: round(s.recent_rate()) for pid, s in planner.sources.items()}
        resumed = sum(self.chunks[i].length for i in self.resumed)
        rate = sum(per_peer.values()) or (done - resumed) / elapsed
        named = [
            {
                "peer_id": pid,
                "name": getattr(self._sources.get(pid), "name", ""),
                "rate": per_peer[pid],
                "bytes": s.bytes,
                "partial": s.have is not None,
            }
            for pid, s in planner.sources.items()
            if not s.failed
        ]
        self._publish(
            OpProgress(
                OpKind.DOWNLOAD,
                self.job.game_id,
                done=done,
                total=total,
                rate=round(rate),
                eta=round((total - done) / rate, 1) if rate > 0 else None,
                active_peers=len(planner.live_sources()),
                peers=per_peer,
                sources=named,
            )
        )
