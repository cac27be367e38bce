"""Registers the built-in front-ends through the same hook outside plugins use.

The factories are lazy: every ``lanspread`` command loads this plugin, and
only a starting peer needs a front-end (and, through it, the runtime and
aioquic).
"""

from __future__ import annotations

from lanspread_core import FrontendRecord, hookimpl, lazy


@hookimpl
def lanspread_frontends() -> list[FrontendRecord]:
    return [
        FrontendRecord(
            name="console",
            factory=lazy("lanspread_core.frontends.console:ConsoleFrontend"),
            description="a live view for people (plain lines when stdout is not a terminal)",
        ),
        FrontendRecord(
            name="jsonl",
            factory=lazy("lanspread_core.frontends.jsonl:JsonlFrontend"),
            description="JSON lines on stdin/stdout, for scripts and tests",
        ),
    ]
