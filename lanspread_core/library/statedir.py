"""The state directory: identity, library index, intents, logs, settings."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import platformdirs

from lanspread_core.errors import LanspreadError
from lanspread_core.system.portable import LockHeld, exclusive_lock

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
        """Create the directory, owner-only (0700), also when it already existed wider.

        :raises LanspreadError: it cannot be made owner-only (say, another user owns it).
        """
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        if os.name == "posix" and stat.S_IMODE(self.path.stat().st_mode) != 0o700:
            try:
                os.chmod(self.path, 0o700)
            except OSError as exc:
                raise LanspreadError(
                    f"cannot make the state directory {self.path} owner-only (0700):"
                    f" {exc.strerror or exc}"
                ) from None
        return self

    @property
    def library_index(self) -> Path:
        return self.path / "library.json"

    @property
    def manifests(self) -> Path:
        """Cached manifests, one file per ``manifest_hash`` (the index names them)."""
        return self.path / "manifests"

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

    @property
    def log_file(self) -> Path:
        """The peer's own log (rotated: ``lanspread.log.1`` ... are older)."""
        return self.logs / "lanspread.log"

    @property
    def control_socket(self) -> Path:
        """The running peer's local control endpoint (JSONL over a Unix socket, or
        where an OS without them finds the loopback port and its token)."""
        return self.path / "control.sock"


class StateDirBusy(LanspreadError):
    """Another process holds the state directory; ``holder`` says which."""

    def __init__(self, message: str, holder: str = "") -> None:
        super().__init__(message)
        self.holder = holder


@contextmanager
def locked(state: StateDir, holder: str) -> Iterator[None]:
    """Hold the state directory for one process (a running peer or a local command).

    Two processes mutating one games directory would race each other's
    transactions, so the second one is refused with the reason.
    """
    state.ensure()
    try:
        with exclusive_lock(state.path / "lock", f"{holder} (pid {os.getpid()})"):
            yield
    except LockHeld as held:
        raise StateDirBusy(
            f"the state directory {state.path} is in use by {held.holder};"
            " stop it or use its control commands",
            held.holder,
        ) from None
