"""A command run through click's test runner, without ``main``, loads the plugins itself."""

from __future__ import annotations

import json

from click.testing import CliRunner

from lanspread_core.cli.main import cli


def test_plugins_through_the_test_runner_lists_the_installed_providers() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"], env={"LANSPREAD_LOAD_PLUGINS": None})
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert {"unrar", "libarchive", "fixture"} <= set(data["providers"])
    assert {"mdns", "static"} <= set(data["discovery"])
