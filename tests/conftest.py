"""The suite's rules: markers by folder, skips that say how to run, no skips under CI.

``tests/unit`` runs in this process, ``tests/integration`` starts real peers and
CLI processes over loopback, ``tests/lab`` needs root (network namespaces,
tmpfs mounts). Each test gets the marker of its folder, so ``pytest -m unit``
picks the quick ones. Shared helpers live in ``tests/support``; the names
below stay importable from ``conftest`` for older tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from support.cli import LANSPREAD, run_cli
from support.data import RAR_FIXTURES, ROOT, expected_rar
from support.gamesets import GameSets
from support.needs import unmet
from support.trees import tree

__all__ = ["LANSPREAD", "RAR_FIXTURES", "ROOT", "expected_rar", "run_cli", "tree"]

TESTS = Path(__file__).resolve().parent
FOLDERS = ("unit", "integration", "lab")
#: set by every CI service (and by .ci/run): a skip there would hide a test that never ran
CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_configure(config: pytest.Config) -> None:
    if CI and not config.pluginmanager.hasplugin("timeout"):
        raise pytest.UsageError("CI=true needs pytest-timeout, so a hung test ends the run")
    # no command a test runs reads the tester's own lanspread.toml (a test that
    # wants settings names its file with LANSPREAD_CONFIG)
    config_home = Path(tempfile.mkdtemp(prefix="lanspread-tests-config-"))
    os.environ["XDG_CONFIG_HOME"] = str(config_home)
    config.add_cleanup(lambda: shutil.rmtree(config_home, ignore_errors=True))


@pytest.fixture
def rar_fixtures() -> Path:
    return RAR_FIXTURES


@pytest.fixture(scope="session")
def game_sets(tmp_path_factory: pytest.TempPathFactory) -> GameSets:
    """``game_sets.create(dest, "alpha", size=...)``: create_set, each set built once."""
    return GameSets(tmp_path_factory.mktemp("gamesets"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        folder = _folder(item)
        if folder:
            item.add_marker(folder)


def _folder(item: pytest.Item) -> str | None:
    try:
        first = item.path.relative_to(TESTS).parts[0]
    except ValueError:
        return None
    return first if first in FOLDERS else None


#: a test run with ``provider=<name>`` needs what that provider loads
PROVIDER_NEEDS = {"libarchive": "libarchive"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    needs = [need for mark in item.iter_markers("needs") for need in mark.args]
    callspec = getattr(item, "callspec", None)
    if callspec is not None and callspec.params.get("provider") in PROVIDER_NEEDS:
        needs.append(PROVIDER_NEEDS[callspec.params["provider"]])
    if _folder(item) == "lab" and not needs:
        needs = ["root"]
    for need in needs:
        reason = unmet(need)
        if reason:
            pytest.skip(reason)


_skipped: list[tuple[str, str]] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and not hasattr(report, "wasxfail"):
        _skipped.append((report.nodeid, _reason(report)))


def pytest_collectreport(report: pytest.CollectReport) -> None:
    if report.skipped:
        _skipped.append((report.nodeid, _reason(report)))


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple):  # (path, line, "Skipped: why")
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if CI and _skipped and exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if CI and _skipped:
        terminalreporter.section("skipped under CI=true", sep="=", red=True, bold=True)
        terminalreporter.line(f"CI must run every test; {len(_skipped)} skipped:", red=True)
        for nodeid, reason in _skipped:
            terminalreporter.line(f"  {nodeid}: {reason}")
