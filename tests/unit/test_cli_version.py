"""``lanspread --version`` names the installed version."""

from __future__ import annotations

import importlib.metadata

from support.cli import invoke


def test_version_is_the_installed_distributions() -> None:
    result = invoke("--version")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"lanspread {importlib.metadata.version('lanspread-core')}\n"
