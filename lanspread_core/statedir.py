"""The state directory: identity, library index, intents, logs, settings."""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

ENV_STATE_DIR = "LANSPREAD_STATE_DIR"
ENV_GAMES_DIR = "LANSPREAD_GAMES_DIR"


def default_state_dir() -> Path:
    return Path(platformdirs.user_state_dir("lanspread", appauthor=False))


def default_games_dir() -> Path:
    return Path(platformdirs.user_data_dir("lanspread", appauthor=False)) / "games"


class StateDir:
    """Paths inside one peer's state directory (created on demand)."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = (path or default_state_dir()).resolve()

    def ensure(self) -> StateDir:
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        return self

    @property
    def library_index(self) -> Path:
        return self.path / "library.json"

    def game_dir(self, game_id: str) -> Path:
        return self.path / "games" / game_id

    def intent_path(self, game_id: str) -> Path:
        return self.game_dir(game_id) / "install_intent.json"

    def intents(self) -> list[Path]:
        base = self.path / "games"
        if not base.is_dir():
            return []
        return sorted(p for p in base.glob("*/install_intent.json") if p.is_file())

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    @property
    def unpack_logs(self) -> Path:
        return self.logs / "unpack"


def env_path(name: str) -> Path | None:
    value = os.environ.get(name)
    return Path(value) if value else None
