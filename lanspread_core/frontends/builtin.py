"""Registers the built-in front-ends through the same hook outside plugins use.

The factories import their modules when called: every ``lanspread`` command
loads this plugin, and only a starting peer needs a front-end (and, through
it, the runtime and aioquic).
"""

from __future__ import annotations

from typing import Any

from lanspread_core import FrontendRecord, hookimpl
from lanspread_core.config import PeerConfig


def _console(config: PeerConfig) -> Any:
    from lanspread_core.frontends.console import ConsoleFrontend

    return ConsoleFrontend(config)


def _jsonl(config: PeerConfig) -> Any:
    from lanspread_core.frontends.jsonl import JsonlFrontend

    return JsonlFrontend(config)


@hookimpl
def lanspread_frontends() -> list[FrontendRecord]:
    return [
        FrontendRecord(
            name="console",
            factory=_console,
            description="a live view for people (plain lines when stdout is not a terminal)",
        ),
        FrontendRecord(
            name="jsonl",
            factory=_jsonl,
            description="JSON lines on stdin/stdout, for scripts and tests",
        ),
    ]
