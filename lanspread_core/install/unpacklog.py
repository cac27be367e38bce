"""Unpack logs: one file per run, the last 20 kept, terminal noise cleaned.

Every install, update and stream-install writes one, named
``<yyyymmdd>-<hhmmss>-<microseconds>-<game>-<op>.log`` in local time, so the
names sort in the order the runs started.

Tools and libraries print progress with carriage-return redraws, backspaces
and ANSI escapes; stored as-is they make unreadable files, so every line is
rendered to what a terminal would finally show before it is written.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from types import TracebackType

KEEP = 20
#: what writes an unpack log
OPS = ("install", "update", "stream-install")
_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _render_line(line: str) -> str:
    """What a terminal shows for one line: CR returns to column 0, BS steps back."""
    out: list[str] = []
    col = 0
    for ch in line:
        if ch == "\r":
            col = 0
        elif ch == "\b":
            col = max(0, col - 1)
        else:
            if col < len(out):
                out[col] = ch
            else:
                out.append(ch)
            col += 1
    return "".join(out).rstrip()


def clean_terminal(text: str) -> str:
    text = _ANSI.sub("", text)
    lines = [_CONTROL.sub("", _render_line(ln)) for ln in text.split("\n")]
    return "\n".join(lines)


class UnpackLog:
    """A context manager writing one run's log, then pruning old runs."""

    def __init__(self, folder: Path, game_id: str, op: str) -> None:
        self.folder = folder
        self.path = folder / f"{_stamp()}-{game_id}-{op}.log"
        self._lines: list[str] = []

    def line(self, text: str) -> None:
        self._lines.append(clean_terminal(text))

    def __enter__(self) -> UnpackLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.line(f"failed: {exc}")
        else:
            self.line("finished")
        self.folder.mkdir(parents=True, exist_ok=True)
        self.path.write_text("\n".join(self._lines) + "\n", encoding="utf-8")
        prune(self.folder)


def _stamp() -> str:
    """The time to the microsecond, from one reading of the clock."""
    ns = time.time_ns()
    seconds, micros = divmod(ns // 1000, 1_000_000)
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(seconds)) + f"-{micros:06d}"


def runs(folder: Path) -> list[Path]:
    """The unpack logs in ``folder``, oldest first."""
    return sorted(folder.glob("*.log")) if folder.is_dir() else []


def is_run_of(path: Path, game_id: str) -> bool:
    """Whether the unpack log at ``path`` is of a run on ``game_id``."""
    # the stamp has two dashes, then "<game>-<op>"; game ids may hold dashes too
    rest = path.stem.split("-", 3)[-1]
    return any(rest == f"{game_id}-{op}" for op in OPS)


def prune(folder: Path, keep: int = KEEP) -> None:
    for old in runs(folder)[:-keep]:
        old.unlink(missing_ok=True)
