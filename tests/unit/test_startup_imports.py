"""``lanspread --help`` and ``lanspread plugins`` load no provider or network library.

Each run is a fresh interpreter (this test process has imported everything
already): a small wrapper runs the CLI's ``main`` and then prints the names
of the loaded modules, so the check sees exactly what a user's command loads.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

#: top-level import names: zeroconf, aioquic, rarfile, unrar2-cffi, libarchive-c
HEAVY = frozenset({"zeroconf", "aioquic", "rarfile", "unrar", "libarchive"})

WRAPPER = """
import json, sys
from lanspread_core.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("\\n@@MODULES@@" + json.dumps(sorted(sys.modules)))
"""


def run_cli(*args: str) -> tuple[str, set[str]]:
    """Run the CLI in a fresh interpreter with every installed plugin; output and modules."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LANSPREAD_")}
    proc = subprocess.run(
        [sys.executable, "-c", WRAPPER, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    output, marker, modules = proc.stdout.rpartition("\n@@MODULES@@")
    assert marker, f"the wrapper did not finish: {proc.stderr}"
    return output + proc.stderr, set(json.loads(modules))


def heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


@pytest.mark.parametrize("args", [("--help",), ("plugins",), ("plugins", "--json")])
def test_listing_commands_load_no_provider_or_network_library(args: tuple[str, ...]) -> None:
    output, modules = run_cli(*args)
    assert "lanspread_core.plugin.registry" in modules  # the plugins were loaded
    assert heavy(modules) == []


def test_plugins_still_lists_what_the_providers_handle() -> None:
    output, modules = run_cli("plugins", "--json")
    data = json.loads(output)
    assert {"unrar", "libarchive"} <= set(data["providers"])
    assert "rar5" in data["providers"]["unrar"]["handles"]
    assert data["providers"]["libarchive"]["kinds"] == ["unpacker", "stream"]
    assert {"mdns", "static"} <= set(data["discovery"])
    assert heavy(modules) == []


def test_building_a_provider_loads_its_library(tmp_path: Path) -> None:
    """The other side: the lazy factories do import their module when a command uses one."""
    bogus = tmp_path / "game.eti"
    bogus.write_bytes(b"not an archive")
    output, modules = run_cli("inspect", str(bogus), "--provider", "unrar")
    assert "cannot handle" in output
    assert "rarfile" in modules and "lanspread_unrar.provider" in modules
    assert "libarchive" not in modules
