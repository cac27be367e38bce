"""At start the soft open-files limit is raised to the hard one and reported;
where the OS has no such limit (no ``resource`` module), nothing breaks."""

from __future__ import annotations

import logging
import subprocess
import sys
from types import SimpleNamespace

import pytest

from lanspread_core.system import portable


def test_without_resource_the_fallback_reports_an_unknown_limit(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(portable, "_resource", None)
    caplog.set_level(logging.INFO, logger=portable.__name__)
    assert portable.raise_open_files_limit() is None
    assert any(r.levelno == logging.INFO and "open files" in r.getMessage() for r in caplog.records)


def test_the_soft_limit_is_raised_to_the_hard_one_and_logged(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    limits = {"nofile": (1024, 524288)}

    def setrlimit(which: str, value: tuple[int, int]) -> None:
        limits[which] = value

    fake = SimpleNamespace(
        RLIMIT_NOFILE="nofile",
        RLIM_INFINITY=-1,
        getrlimit=lambda which: limits[which],
        setrlimit=setrlimit,
    )
    monkeypatch.setattr(portable, "_resource", fake)
    caplog.set_level(logging.INFO, logger=portable.__name__)
    assert portable.raise_open_files_limit() == 524288
    assert limits["nofile"] == (524288, 524288)
    assert any("at most 524288" in r.getMessage() for r in caplog.records)


def test_an_unlimited_hard_limit_is_met_with_the_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    limits = {"nofile": (256, -1)}
    fake = SimpleNamespace(
        RLIMIT_NOFILE="nofile",
        RLIM_INFINITY=-1,
        getrlimit=lambda which: limits[which],
        setrlimit=lambda which, value: limits.__setitem__(which, value),
    )
    monkeypatch.setattr(portable, "_resource", fake)
    assert portable.raise_open_files_limit() == portable.OPEN_FILES_CEILING
    assert limits["nofile"] == (portable.OPEN_FILES_CEILING, -1)


def test_a_real_process_ends_with_its_soft_limit_at_the_hard_one() -> None:
    code = (
        "import resource\n"
        "soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (min(256, hard), hard))\n"
        "from lanspread_core.system.portable import raise_open_files_limit\n"
        "print(raise_open_files_limit(), *resource.getrlimit(resource.RLIMIT_NOFILE))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    reported, soft, hard = (int(x) for x in out.stdout.split())
    infinity = portable._resource.RLIM_INFINITY  # type: ignore[union-attr]
    assert reported == soft == (portable.OPEN_FILES_CEILING if hard == infinity else hard)
