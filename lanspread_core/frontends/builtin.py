"""Registers the built-in front-ends through the same hook outside plugins use."""

from __future__ import annotations

from lanspread_core import FrontendRecord, hookimpl
from lanspread_core.frontends.console import ConsoleFrontend
from lanspread_core.frontends.jsonl import JsonlFrontend


@hookimpl
def lanspread_frontends() -> list[FrontendRecord]:
    return [
        FrontendRecord(
            name="console",
            factory=ConsoleFrontend,
            description="a live view for people (plain lines when stdout is not a terminal)",
        ),
        FrontendRecord(
            name="jsonl",
            factory=JsonlFrontend,
            description="JSON lines on stdin/stdout, for scripts and tests",
        ),
    ]
