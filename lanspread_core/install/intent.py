"""Install intents: the state-directory record that a transaction is under way.

Written atomically (temp file, fsync, rename) before a transaction touches
the game root and cleared last; startup recovery reads it together with what
it finds on disk to roll the transaction back or forward.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass

from lanspread_core.library.statedir import StateDir
from lanspread_core.system.atomic import write_json_atomic
from lanspread_core.system.portable import fsync_dir

OPS = ("install", "update", "uninstall", "remove-download", "stream-install")


@dataclass(frozen=True)
class Intent:
    op: str
    game: str
    step: str
    started: float
    pid: int
    #: the transaction created the game root (a stream-install into a new folder)
    created_root: bool = False


def record(state: StateDir, game_id: str, op: str, step: str, created_root: bool = False) -> Intent:
    intent = Intent(op, game_id, step, time.time(), os.getpid(), created_root)
    path = state.intent_path(game_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(path, asdict(intent))
    return intent


def read(state: StateDir, game_id: str) -> Intent | None:
    """The recorded intent, or ``None``; an unreadable file counts as none."""
    path = state.intent_path(game_id)
    try:
        data = json.loads(path.read_text())
        intent = Intent(**data)
    except (OSError, ValueError, TypeError):
        return None
    return intent if intent.op in OPS else None


def clear(state: StateDir, game_id: str) -> None:
    path = state.intent_path(game_id)
    try:
        path.unlink()
    except FileNotFoundError:
        return
    fsync_dir(path.parent)


def recorded_games(state: StateDir) -> list[str]:
    return [p.parent.name for p in state.intents()]
