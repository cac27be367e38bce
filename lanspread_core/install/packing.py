"""Building a game root from a folder, crash-safely (``lanspread pack``).

The root is built in ``<games dir>/.pack-<id>.staging/<id>/``: the archives,
then a check that an installed provider lists exactly what was planned, then
``version.ini`` last, then one rename into ``<games dir>/<id>``. An error or
Ctrl-C removes the staging folder; after a kill only the staging folder is
left, and the next ``pack`` or peer start removes it, because the marker file
beside the root says it is ours and its lock says no ``pack`` still runs.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from lanspread_core.archive.packer import Packer
from lanspread_core.errors import ArchiveError, LanspreadError, NoProviderCanHandle, UsageError
from lanspread_core.install.packplan import PackPlan, archive_names
from lanspread_core.library.layout import (
    OWNED_MARKER,
    SENTINEL,
    SENTINEL_TMP,
    game_root,
    is_pack_staging,
    pack_staging,
)
from lanspread_core.plugin.registry import Registry
from lanspread_core.plugin.selection import AUTO, choose
from lanspread_core.system.atomic import write_atomic
from lanspread_core.system.diskspace import check_free_space
from lanspread_core.system.portable import LockHeld, exclusive_lock, fsync_dir

log = logging.getLogger(__name__)


class RootExists(UsageError):
    """``pack`` never replaces a game folder."""


def _root_exists(root: Path) -> RootExists:
    return RootExists(
        f"{root} already exists and pack never replaces a game; choose another --id,"
        " or remove that folder first (lanspread uninstall and remove-download do it safely)"
    )


def sweep_pack_staging(games_dir: Path) -> list[str]:
    """Remove the staging folders that killed ``pack`` runs left; say what was removed.

    Only a folder named like one that holds our marker file is removed, and
    only when no running ``pack`` holds the marker's lock.
    """
    notes: list[str] = []
    try:
        children = list(games_dir.iterdir())
    except OSError:
        return notes
    for child in children:
        marker = child / OWNED_MARKER
        if not is_pack_staging(child.name) or child.is_symlink() or not marker.is_file():
            continue
        try:
            with exclusive_lock(marker, f"lanspread recovery (pid {os.getpid()})"):
                shutil.rmtree(child)
        except LockHeld:
            continue  # a pack is building it right now
        except OSError as exc:
            log.warning("cannot remove %s: %s", child, exc)
            continue
        notes.append(f"removed {child.name}, left by an interrupted pack")
        log.info("recovery: removed %s, left by an interrupted pack", child)
    return notes


def version_line(version: str) -> str:
    """What ``pack`` writes into ``version.ini``."""
    return f"version = {version}\n"


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PackJob:
    """One ``pack`` of ``game_id`` into ``games_dir``; a context manager.

    Leaving the ``with`` block by an exception (Ctrl-C too) removes the
    staging folder; :meth:`promote` is the only way the root comes into being.
    """

    def __init__(self, games_dir: Path, game_id: str) -> None:
        self.games_dir = games_dir
        self.game_id = game_id
        self.final = game_root(games_dir, game_id)
        self.staging = pack_staging(games_dir, game_id)
        self.root = self.staging / game_id
        self.archives: list[Path] = []
        self.swept: list[str] = []
        self._lock = ExitStack()

    def __enter__(self) -> PackJob:
        self.swept = sweep_pack_staging(self.games_dir)
        if os.path.lexists(self.final):
            raise _root_exists(self.final)
        try:
            self.staging.mkdir()
        except FileExistsError:
            raise UsageError(
                f"{self.staging} is in use by another 'lanspread pack' of {self.game_id};"
                " if none is running, remove that folder and pack again"
            ) from None
        holder = f"lanspread pack (pid {os.getpid()})"
        try:
            self._lock.enter_context(exclusive_lock(self.staging / OWNED_MARKER, holder))
            self.root.mkdir()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # removed while the lock is held, so a sweep never races this
        shutil.rmtree(self.staging, ignore_errors=True)
        self._lock.close()

    def check_space(self, plan: PackPlan) -> None:
        check_free_space(self.games_dir, plan.needed, f"pack {self.game_id}")

    def write(self, plan: PackPlan, packer: Packer, progress: Callable[[int], None]) -> None:
        """Write every volume of ``plan`` with ``packer`` and flush them to disk."""
        names = archive_names(self.game_id, len(plan.volumes))
        for name, items in zip(names, plan.volumes, strict=True):
            target = self.root / name
            self.archives.append(target)
            packer.write(items, target, progress)
            _fsync_file(target)

    def verify(self, plan: PackPlan, registry: Registry) -> str:
        """Check that an installed provider lists exactly ``plan``; its name."""
        try:
            choice = choose(registry, AUTO, self.archives)
        except NoProviderCanHandle as exc:
            raise NoProviderCanHandle(
                f"no installed provider reads the archives this packer wrote, so peers could"
                f" not install them ({exc})"
            ) from None
        listed = [(e.path, e.kind, e.size) for e in choice.provider.entries(self.archives)]
        planned = [(i.path, i.kind, i.size) for i in plan.items]
        if listed != planned:
            first = next(
                (n for n, (a, b) in enumerate(zip(listed, planned, strict=False)) if a != b),
                min(len(listed), len(planned)),
            )
            got = listed[first][0] if first < len(listed) else "the end"
            want = planned[first][0] if first < len(planned) else "the end"
            raise ArchiveError(
                f"provider {choice.name!r} reads {got!r} where the archives should hold"
                f" {want!r}; the packer wrote something else, so nothing was made"
            )
        return choice.name

    def seal(self, version: str) -> None:
        """Write ``version.ini``, last, through its reserved temporary name."""
        write_atomic(self.root / SENTINEL, version_line(version).encode(), SENTINEL_TMP)
        fsync_dir(self.root)

    def promote(self) -> Path:
        """Rename the finished root into the games dir; the game exists from here on."""
        if os.path.lexists(self.final):
            raise _root_exists(self.final)
        try:
            os.rename(self.root, self.final)
        except OSError as exc:
            raise LanspreadError(
                f"cannot move the packed game to {self.final}: {exc.strerror}"
            ) from exc
        fsync_dir(self.games_dir)
        return self.final
