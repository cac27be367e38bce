"""What the user put into ``local/`` since the install: the answer behind every
"this deletes your files" question.

An install, update or stream-install records, in the state directory, every
file it put into ``local/`` with its size and modification time
(``games/<id>/installed_files.json``), taken from the staging folder once the
unpack is complete and before the user can touch it. :func:`changes` compares
``local/`` with that record: a file not in it was **added** by the user (a
save, a config, a mod); a recorded file whose size or mtime differs was
**changed**. Hashing is not needed: nothing but the user (or the game) writes
there, and either way the file is theirs now.

No record (a game installed by hand or by an older Lanspread) is answered as
``known: false``; callers then assume the worst and ask.
"""

from __future__ import annotations

import json
import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lanspread_core.library.layout import LOCAL, OWNED_MARKER
from lanspread_core.library.statedir import StateDir
from lanspread_core.system.atomic import write_json_atomic

log = logging.getLogger(__name__)

FORMAT = 1
#: how many paths of each kind an answer names
SAMPLE = 5

Listing = dict[str, tuple[int, int]]


def record_path(state: StateDir, game_id: str) -> Path:
    return state.game_dir(game_id) / "installed_files.json"


def walk(tree: Path) -> Listing:
    """Every non-directory under ``tree`` as ``relpath -> (size, mtime_ns)``; links not followed."""
    found: Listing = {}
    for dirpath, dirnames, filenames in os.walk(tree):
        here = Path(dirpath)
        for name in list(dirnames):
            if (here / name).is_symlink():  # os.walk lists a link to a folder as a folder
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            path = here / name
            rel = path.relative_to(tree).as_posix()
            if rel == OWNED_MARKER:
                continue
            st = os.lstat(path)
            found[rel] = (st.st_size, st.st_mtime_ns)
    return found


def save(state: StateDir, game_id: str, listing: Listing) -> None:
    """Record what an install put into ``local/``; a failure only costs the record."""
    path = record_path(state, game_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(path, {"format": FORMAT, "files": listing})
    except OSError as exc:
        log.warning("could not record the installed files of %s: %s", game_id, exc)


def forget(state: StateDir, game_id: str) -> None:
    try:
        record_path(state, game_id).unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove the installed-files record of %s: %s", game_id, exc)


def load(state: StateDir, game_id: str) -> Listing | None:
    try:
        data = json.loads(record_path(state, game_id).read_text())
        if data.get("format") != FORMAT:
            return None
        return {str(k): (int(v[0]), int(v[1])) for k, v in data["files"].items()}
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        return None


@dataclass
class LocalChanges:
    """``local-changes``: the files of ``local/`` the user added or changed since the install."""

    game_id: str
    installed: bool
    known: bool
    files: int = 0
    added: int = 0
    changed: int = 0
    sample: list[str] = field(default_factory=list)
    changed_sample: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def changes(state: StateDir, game_id: str, root: Path) -> LocalChanges:
    """Compare ``root/local`` with what the install recorded (runs a directory walk)."""
    local = root / LOCAL
    try:
        installed = stat.S_ISDIR(os.lstat(local).st_mode)
    except FileNotFoundError:
        installed = False
    if not installed:
        return LocalChanges(game_id, installed=False, known=True)
    now = walk(local)
    recorded = load(state, game_id)
    if recorded is None:
        return LocalChanges(game_id, installed=True, known=False, files=len(now))
    added = sorted(p for p in now if p not in recorded)
    changed = sorted(p for p, sig in now.items() if p in recorded and recorded[p] != sig)
    return LocalChanges(
        game_id,
        installed=True,
        known=True,
        files=len(now),
        added=len(added),
        changed=len(changed),
        sample=added[:SAMPLE],
        changed_sample=changed[:SAMPLE],
    )
