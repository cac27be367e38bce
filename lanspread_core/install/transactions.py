"""Install, update, uninstall and remove-download as crash-safe transactions.

Each one records an intent, works only in the reserved folders
(``.local.installing/``, ``.local.backup/``, each carrying a
``.lanspread_owned`` marker), swaps by rename and clears the intent last.
:meth:`Transactions.recover` runs at start-up: from the intent and what is
on disk it rolls each interrupted transaction back or forward, so a crash at
any point leaves the old state or the new one. A reserved folder is deleted
only when an intent or its marker proves it is ours.

Update reinstalls from the current archives and keeps the user's files: a
file in ``local/`` that the archives do not contain is hard-linked (or
copied) into the new tree before the swap.

When the catalog lists per-file hashes for the downloaded version, install and
update hold the unpacked tree to them (:mod:`~lanspread_core.archive.filehashes`):
a missing, extra or different file fails the unpack, and staging is removed
before anything reaches ``local/``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

from lanspread_core.archive.cancel import CancelToken, WatchedSink
from lanspread_core.archive.filehashes import FileCheck
from lanspread_core.archive.listing import check_entries
from lanspread_core.archive.treewriter import unpack_via_stream
from lanspread_core.errors import LanspreadError, UsageError, did_you_mean
from lanspread_core.install import intent, localfiles
from lanspread_core.install.packing import sweep_pack_staging
from lanspread_core.install.unpacklog import UnpackLog
from lanspread_core.library.catalog import CatalogGame
from lanspread_core.library.layout import (
    BACKUP,
    INSTALLING,
    LOCAL,
    OWNED_MARKER,
    SENTINEL,
    SENTINEL_DISCARDED,
    SENTINEL_TMP,
    game_root,
    is_downloaded,
    is_installed,
    root_archives,
)
from lanspread_core.library.operations import OperationTable
from lanspread_core.library.statedir import StateDir
from lanspread_core.library.versionini import check_version_file
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import choose
from lanspread_core.system.diskspace import check_free_space
from lanspread_core.system.faults import fault_point
from lanspread_core.system.portable import fsync_dir

log = logging.getLogger(__name__)

Progress = Callable[[int, int], None]


class TransactionError(LanspreadError):
    pass


#: what to do about a game that is not (completely) downloaded here
_FETCH_FIRST = "; download it first: 'lanspread download {game}' while a peer runs"


@dataclass
class Outcome:
    game_id: str
    op: str
    provider: str | None = None
    files: int = 0
    bytes: int = 0


def _mark(folder: Path) -> None:
    marker = folder / OWNED_MARKER
    with open(marker, "wb") as fh:
        fh.write(b"created by lanspread; this folder is a transaction's and may be removed\n")
        os.fsync(fh.fileno())
    fsync_dir(folder)


def _owned(folder: Path) -> bool:
    return (folder / OWNED_MARKER).is_file()


def _unmark(folder: Path) -> None:
    (folder / OWNED_MARKER).unlink()


def _rename(src: Path, dst: Path) -> None:
    os.rename(src, dst)
    fsync_dir(dst.parent)


def _rmtree(path: Path, fault: str | None = None) -> None:
    """Remove ``path``; ``fault`` fires after the first child is gone (crash tests)."""
    if not os.path.lexists(path):
        return
    if not stat.S_ISDIR(os.lstat(path).st_mode):
        path.unlink()
        return
    if fault:
        children = sorted(path.iterdir())
        if children:
            _rmtree(children[0])
            fault_point(fault)
    shutil.rmtree(path)


def _carry_user_files(old: Path, new: Path) -> int:
    """Link every path of ``old`` that ``new`` lacks into ``new``; return how many.

    The old tree stays untouched, so a crash before the swap loses nothing. A
    user path that collides with the new tree's shape (a file where the
    archives now have a folder) stops the update rather than dropping it.
    """
    carried = 0
    for dirpath, dirnames, filenames in os.walk(old):
        here = Path(dirpath)
        rel_dir = here.relative_to(old)
        target_dir = new / rel_dir
        for name in list(dirnames):
            src, dst = here / name, target_dir / name
            if src.is_symlink():
                dirnames.remove(name)
                filenames.append(name)
            elif not os.path.lexists(dst):
                dst.mkdir()
            elif not stat.S_ISDIR(os.lstat(dst).st_mode):
                raise TransactionError(
                    f"your folder local/{rel_dir / name} is a file in the new version;"
                    " move it away and update again"
                )
        for name in filenames:
            if here == old and name == OWNED_MARKER:
                continue
            src, dst = here / name, target_dir / name
            if os.path.lexists(dst):
                continue  # the archives ship this file: the new version wins
            if src.is_symlink():
                os.symlink(os.readlink(src), dst)
            else:
                try:
                    os.link(src, dst)
                except OSError:
                    shutil.copy2(src, dst)
            carried += 1
    return carried


def _file_check(root: Path, trusted: CatalogGame | None) -> FileCheck | None:
    """The check of the catalog's per-file hashes, when it has them for the version
    ``root`` holds (another version's hashes say nothing about these archives)."""
    if trusted is None or not trusted.files or check_version_file(root) != trusted.version:
        return None
    return FileCheck(trusted.files, f"the download of {trusted.id}")


class Transactions:
    """The local operations on one games directory."""

    def __init__(
        self,
        games_dir: Path,
        state: StateDir,
        registry: Registry,
        ops: OperationTable | None = None,
        provider: str = "auto",
        catalog_ids: Collection[str] = (),
    ) -> None:
        self.games_dir = games_dir
        #: the games the catalog names: one missing here is "not downloaded", not a typo
        self.catalog_ids = frozenset(catalog_ids)
        self.state = state
        self.registry = registry
        self.ops = ops or OperationTable()
        self.provider = provider

    # ----------------------------------------------------------------- helpers
    def root(self, game_id: str) -> Path:
        root = game_root(self.games_dir, game_id)
        if root.is_symlink():
            raise UsageError(f"{root} is a symbolic link; Lanspread only manages real folders")
        return root

    def require_root(self, game_id: str, *, to_install: bool = False) -> Path:
        """The root of ``game_id``, which must exist; the refusal suggests
        (``to_install``, for a catalog game) downloading it first, or the
        nearest game ids."""
        root = self.root(game_id)
        if not root.is_dir():
            if to_install and game_id in self.catalog_ids:
                raise TransactionError(
                    f"{game_id} is not downloaded here" + _FETCH_FIRST.format(game=game_id)
                )
            hint = did_you_mean(game_id, [*self._here(), *self.catalog_ids])
            raise UsageError(f"there is no game {game_id!r} in {self.games_dir}{hint}")
        return root

    def _here(self) -> list[str]:
        """The game folders in the games directory (what a mistyped id may mean)."""
        try:
            return [p.name for p in self.games_dir.iterdir() if p.is_dir()]
        except OSError:
            return []

    def _unpack_into_staging(
        self,
        game_id: str,
        op: str,
        root: Path,
        token: CancelToken | None,
        progress: Progress | None,
        provider: str | None = None,
        trusted: CatalogGame | None = None,
    ) -> Outcome:
        archives = root_archives(root)
        if not archives:
            raise TransactionError(f"{game_id} has no archives (*.eti) to install from")
        choice = choose(self.registry, provider or self.provider, archives)
        # checked once, here, before staging exists; the tree writer holds the
        # provider's stream to this listing
        listing = check_entries(choice.provider.entries(archives))
        check = _file_check(root, trusted)
        if check is not None:
            check.check_listing(listing)
        total = listing.total
        check_free_space(root, total, f"install {game_id}")
        outcome = Outcome(game_id, op, choice.name, len(listing.entries), total)

        intent.record(self.state, game_id, op, "staging")
        fault_point(f"{op}.intent_written")
        staging = root / INSTALLING
        staging.mkdir()
        _mark(staging)
        fault_point(f"{op}.staging_created")

        done = 0
        files_done = 0

        def on_bytes(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        def on_file_end(_entry: object) -> None:
            nonlocal files_done
            files_done += 1
            if files_done == 1:
                fault_point(f"{op}.unpacking")

        with UnpackLog(self.state.unpack_logs, game_id, op) as ulog:
            ulog.line(f"{op} {game_id} with provider {choice.name} ({choice.probe.format})")
            ulog.line("archives: " + ", ".join(a.name for a in archives))
            ulog.line(f"{len(listing.entries)} entries, {total} bytes")
            try:
                # the core's unpack, never a provider's own: only the tree writer writes
                unpack_via_stream(
                    choice.provider,
                    archives,
                    staging,
                    lambda sink: WatchedSink(
                        sink if check is None else check.sink(sink), token, on_bytes, on_file_end
                    ),
                    listing=listing,
                    keep=(OWNED_MARKER,),
                )
            except BaseException:
                _rmtree(staging)
                intent.clear(self.state, game_id)
                raise
        fault_point(f"{op}.unpacked")
        return outcome

    # ------------------------------------------------------------- operations
    def install(
        self,
        game_id: str,
        token: CancelToken | None = None,
        progress: Progress | None = None,
        provider: str | None = None,
        trusted: CatalogGame | None = None,
    ) -> Outcome:
        """Unpack a downloaded game into ``local/`` (with ``provider``, else the usual one).

        ``trusted`` is the game's catalog entry: its per-file hashes, when it has
        them for the downloaded version, are checked as the files are unpacked.
        """
        root = self.require_root(game_id, to_install=True)
        with self.ops.hold(game_id, "install"):
            self.recover_game(game_id)
            if not is_downloaded(root):
                raise TransactionError(
                    f"{game_id} is not downloaded (no {SENTINEL})"
                    + _FETCH_FIRST.format(game=game_id)
                )
            if is_installed(root):
                raise TransactionError(f"{game_id} is already installed; use update")
            outcome = self._unpack_into_staging(
                game_id, "install", root, token, progress, provider, trusted
            )
            listing = localfiles.walk(root / INSTALLING)
            _rename(root / INSTALLING, root / LOCAL)
            fault_point("install.promoted")
            self._tidy_committed(game_id, "install", root, listing)
            return outcome

    def update(
        self,
        game_id: str,
        token: CancelToken | None = None,
        progress: Progress | None = None,
        provider: str | None = None,
        trusted: CatalogGame | None = None,
    ) -> Outcome:
        """Reinstall from the current archives, keeping the user's own files
        (``trusted`` as for :meth:`install`)."""
        root = self.require_root(game_id)
        with self.ops.hold(game_id, "update"):
            self.recover_game(game_id)
            if not is_downloaded(root):
                raise TransactionError(f"{game_id} is not downloaded (no {SENTINEL})")
            if not is_installed(root):
                raise TransactionError(f"{game_id} is not installed; use install")
            outcome = self._unpack_into_staging(
                game_id, "update", root, token, progress, provider, trusted
            )
            staging, local, backup = root / INSTALLING, root / LOCAL, root / BACKUP
            listing = localfiles.walk(staging)  # before the user's files join it
            try:
                _carry_user_files(local, staging)
            except BaseException:
                _rmtree(staging)
                intent.clear(self.state, game_id)
                raise
            fault_point("update.user_files_carried")
            intent.record(self.state, game_id, "update", "swap")
            _rename(local, backup)
            _mark(backup)
            fault_point("update.backed_up")
            _rename(staging, local)
            fault_point("update.promoted")
            self._tidy_committed(game_id, "update", root, listing, backup=backup)
            return outcome

    def stream_install(
        self, game_id: str, fill: Callable[[Path], Outcome], source: str = "a peer"
    ) -> Outcome:
        """Install from a stream: ``fill(staging)`` writes the tree, then it is promoted.

        No archives and no ``version.ini`` are written: the game ends installed,
        not downloaded. A failed attempt removes its staging folder, and the game
        root too when this attempt created it. ``source`` names the sender in
        the unpack log.
        """
        root = self.root(game_id)
        with self.ops.hold(game_id, "stream-install"):
            self.recover_game(game_id)
            if is_installed(root):
                raise TransactionError(
                    f"{game_id} is already installed; uninstall it first to stream-install it"
                )
            created = not root.exists()
            root.mkdir(parents=True, exist_ok=True)
            intent.record(self.state, game_id, "stream-install", "staging", created_root=created)
            fault_point("stream-install.intent_written")
            staging = root / INSTALLING
            with UnpackLog(self.state.unpack_logs, game_id, "stream-install") as ulog:
                ulog.line(f"stream-install {game_id} from {source}")
                try:
                    staging.mkdir()
                    _mark(staging)
                    fault_point("stream-install.staging_created")
                    outcome = fill(staging)
                except BaseException:
                    _rmtree(staging)
                    if created:
                        with contextlib.suppress(OSError):
                            root.rmdir()
                    intent.clear(self.state, game_id)
                    raise
                ulog.line(f"{outcome.files} files, {outcome.bytes} bytes received and verified")
            fault_point("stream-install.received")
            listing = localfiles.walk(staging)
            _rename(staging, root / LOCAL)
            fault_point("stream-install.promoted")
            self._tidy_committed(game_id, "stream-install", root, listing)
            return outcome

    def _tidy_committed(
        self,
        game_id: str,
        op: str,
        root: Path,
        listing: localfiles.Listing,
        backup: Path | None = None,
    ) -> None:
        """Tidy up after the new ``local/`` was promoted: the operation has succeeded.

        A step that fails here (an unlink, a backup's removal, clearing the
        intent) is logged, not raised: the files are committed, and what is
        left is exactly what startup recovery finishes, since the intent is
        cleared last and so still proves the leftovers ours.
        """
        try:
            _unmark(root / LOCAL)
            fault_point(f"{op}.marker_removed")
            if backup is not None:
                _rmtree(backup, fault=f"{op}.backup_removing")
                fault_point(f"{op}.backup_removed")
            intent.clear(self.state, game_id)
        except Exception as exc:
            log.warning(
                "%s of %s is done, but tidying up after it failed (%s);"
                " the next start of lanspread finishes it",
                op,
                game_id,
                exc,
                exc_info=True,
            )
        localfiles.save(self.state, game_id, listing)  # a failure only costs the record

    def uninstall(self, game_id: str) -> Outcome:
        """Remove ``local/`` (user files included); the download stays."""
        root = self.require_root(game_id)
        with self.ops.hold(game_id, "uninstall"):
            self.recover_game(game_id)
            if not is_installed(root):
                raise TransactionError(f"{game_id} is not installed")
            intent.record(self.state, game_id, "uninstall", "backup")
            fault_point("uninstall.intent_written")
            backup = root / BACKUP
            _rename(root / LOCAL, backup)
            _mark(backup)
            fault_point("uninstall.backed_up")
            _rmtree(backup, fault="uninstall.backup_removing")
            fault_point("uninstall.backup_removed")
            intent.clear(self.state, game_id)
            localfiles.forget(self.state, game_id)
            return Outcome(game_id, "uninstall")

    def remove_download(self, game_id: str) -> Outcome:
        """Delete a downloaded, not installed game's root."""
        root = self.root(game_id)
        if root.resolve().parent != self.games_dir.resolve():
            raise UsageError(f"{game_id!r} is not a folder directly in {self.games_dir}")
        if not root.is_dir():
            raise UsageError(f"there is no game {game_id!r} in {self.games_dir}")
        with self.ops.hold(game_id, "remove-download"):
            self.recover_game(game_id)
            if is_installed(root):
                raise TransactionError(
                    f"{game_id} is installed; uninstall it before removing its download"
                )
            if not is_downloaded(root):
                raise TransactionError(
                    f"{game_id} has no {SENTINEL}, so it is not a complete download; not removed"
                )
            intent.record(self.state, game_id, "remove-download", "discard")
            fault_point("remove-download.intent_written")
            _rename(root / SENTINEL, root / SENTINEL_DISCARDED)
            fault_point("remove-download.sentinel_discarded")
            _rmtree(root, fault="remove-download.deleting")
            fsync_dir(root.parent)
            fault_point("remove-download.deleted")
            intent.clear(self.state, game_id)
            return Outcome(game_id, "remove-download")

    # --------------------------------------------------------------- recovery
    def recover(self) -> list[str]:
        """Finish or undo every interrupted transaction; return what was done."""
        done: list[str] = []
        games = set(intent.recorded_games(self.state))
        if self.games_dir.is_dir():
            done.extend(sweep_pack_staging(self.games_dir))
            for child in self.games_dir.iterdir():
                reserved = (child / INSTALLING).exists() or (child / BACKUP).exists()
                if child.is_dir() and not child.is_symlink() and reserved:
                    games.add(child.name)
                if child.is_dir() and not child.is_symlink():
                    done.extend(_sweep_sentinel_scratch(child))
        for game_id in sorted(games):
            try:
                self.root(game_id)
            except UsageError:
                intent.clear(self.state, game_id)
                continue
            done.extend(self.recover_game(game_id))
        return done

    def recover_game(self, game_id: str) -> list[str]:
        root = self.root(game_id)
        rec = intent.read(self.state, game_id)
        staging, local, backup = root / INSTALLING, root / LOCAL, root / BACKUP
        notes: list[str] = []

        def note(text: str) -> None:
            notes.append(f"{game_id}: {text}")
            log.info("recovery: %s: %s", game_id, text)

        if rec is not None and rec.op in ("install", "update", "stream-install"):
            if os.path.lexists(staging) and not is_installed(root) and backup.is_dir():
                # update died between its two renames: put the old tree back
                _rename(backup, local)
                (local / OWNED_MARKER).unlink(missing_ok=True)
                note("restored the previous install")
            if os.path.lexists(staging):
                _rmtree(staging)
                note(f"rolled back an unfinished {rec.op}")
            if is_installed(root):
                (local / OWNED_MARKER).unlink(missing_ok=True)
            if os.path.lexists(backup):
                _rmtree(backup)
                note(f"finished an interrupted {rec.op}")
            if rec.created_root and root.is_dir() and not any(root.iterdir()):
                root.rmdir()
                note("removed the empty folder an interrupted stream-install made")
        elif rec is not None and rec.op == "uninstall":
            if os.path.lexists(backup):
                _rmtree(backup)
                note("finished an interrupted uninstall")
        elif rec is not None and rec.op == "remove-download":
            if root.is_dir() and not is_downloaded(root) and not is_installed(root):
                _rmtree(root)
                note("finished an interrupted download removal")
        else:
            notes.extend(self._sweep_unrecorded(game_id, root))
        if rec is not None:
            intent.clear(self.state, game_id)
        return notes

    def _sweep_unrecorded(self, game_id: str, root: Path) -> list[str]:
        """Reserved folders with no intent: act only where the marker proves ownership."""
        notes = []
        staging, local, backup = root / INSTALLING, root / LOCAL, root / BACKUP
        if staging.is_dir():
            if _owned(staging):
                _rmtree(staging)
                notes.append(f"{game_id}: removed a leftover staging folder")
            else:
                notes.append(f"{game_id}: left {staging} alone (not created by lanspread)")
        if backup.is_dir():
            if not _owned(backup):
                notes.append(f"{game_id}: left {backup} alone (not created by lanspread)")
            elif is_installed(root):
                _rmtree(backup)
                notes.append(f"{game_id}: removed a leftover backup")
            else:
                _rename(backup, local)
                (local / OWNED_MARKER).unlink(missing_ok=True)
                notes.append(f"{game_id}: restored local/ from a leftover backup")
        for note in notes:
            log.info("recovery: %s", note)
        return notes


def _sweep_sentinel_scratch(root: Path) -> list[str]:
    """Remove the sentinel's scratch files a stopped download left (reserved names:
    only a download writes them, and none runs while the peer recovers)."""
    notes = []
    for name in (SENTINEL_TMP, SENTINEL_DISCARDED):
        path = root / name
        if path.is_file() and not path.is_symlink():
            path.unlink()
            notes.append(f"{root.name}: removed {name} left by a stopped download")
    return notes
