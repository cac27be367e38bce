"""The line a test is skipped with names what is missing and the command that runs it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from support import needs


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, bool]]:
    """What the machine has, as the needs checks will see it."""
    has = {"root": True, "ip": True, "tc": True, "mount": True, "umount": True}
    has |= {"libarchive": True, "userns": True}
    monkeypatch.setattr(needs, "_have", lambda thing: has[thing])
    monkeypatch.setattr(needs, "_user_namespaces", lambda: has["userns"])
    needs.unmet.cache_clear()
    yield has
    needs.unmet.cache_clear()


def test_a_machine_with_everything_meets_every_need(machine: dict[str, bool]) -> None:
    assert [needs.unmet(n) for n in ("root", "netns", "tmpfs", "libarchive")] == [None] * 4


def test_without_root_the_lab_runs_in_a_user_namespace_or_with_sudo(
    machine: dict[str, bool],
) -> None:
    machine["root"] = False
    assert needs.unmet("netns") == (
        "needs root for network namespaces: run `make test-lab` (in a user namespace)"
    )
    machine["userns"] = False
    needs.unmet.cache_clear()
    assert needs.unmet("tmpfs") == "needs root for tmpfs mounts: run `sudo make test-lab`"


def test_a_missing_tool_names_its_package(machine: dict[str, bool]) -> None:
    machine["ip"] = machine["tc"] = False
    assert needs.unmet("netns") == (
        "needs `ip` and `tc` for network namespaces: install it"
        " (`sudo apt-get install iproute2`), then run `sudo make test-lab`"
    )
    assert needs.unmet("tmpfs") is None


def test_a_missing_library_is_installed_for_make_test(machine: dict[str, bool]) -> None:
    machine["libarchive"] = False
    assert needs.unmet("libarchive") == (
        "needs the libarchive library for the libarchive provider: install it"
        " (`sudo apt-get install libarchive13`), then run `make test`"
    )


def test_an_unknown_need_is_a_mistake_in_the_test(machine: dict[str, bool]) -> None:
    with pytest.raises(ValueError, match="unknown need 'nope'"):
        needs.unmet("nope")
