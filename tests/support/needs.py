"""What a test needs from the machine, and the one line that says so when it is missing.

A test names its needs with ``@pytest.mark.needs("netns")``; every test under
``tests/lab`` needs root at least. The conftest skips a test whose needs are
not met with the line :func:`unmet` returns, which also says how to run it.
A module that cannot even be imported without something calls :func:`require`
before that import.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import pytest

#: need -> (what it is for, what it asks of the machine)
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "root": ("the LAN lab", ("root",)),
    "netns": ("network namespaces", ("root", "ip", "tc")),
    "tmpfs": ("tmpfs mounts", ("root", "mount", "umount")),
    "libarchive": ("the libarchive provider", ("libarchive",)),
    "unar": ("rarfile's extraction", ("unar",)),
    "tmux": ("the terminal front-end", ("tmux",)),
    "chromium": ("the web page's browser tests", ("chromium",)),
}

#: what a check looks for, in words, where its name is not a command
NAMES = {"root": "root", "libarchive": "the libarchive library"}

#: how to get what a check looks for, on Debian and Ubuntu
PACKAGES = {
    "ip": "iproute2",
    "tc": "iproute2",
    "mount": "mount",
    "umount": "mount",
    "libarchive": "libarchive13",
    "unar": "unar",
    "tmux": "tmux",
    "chromium": "chromium",
}


@functools.cache
def _have(thing: str) -> bool:
    if thing == "root":
        return os.geteuid() == 0
    if thing == "libarchive":
        try:  # libarchive-c loads the system library when it is imported
            import libarchive  # noqa: F401
        except (ImportError, OSError):
            return False
        return True
    return shutil.which(thing) is not None


@functools.cache
def _user_namespaces() -> bool:
    """Whether this user may make the namespaces ``make test-lab`` runs the lab in."""
    probe = ["unshare", "--user", "--map-root-user", "--net", "--mount", "--"]
    probe += ["sh", "-c", "mount -t tmpfs tmpfs /run"]  # as the Makefile's USERNS does
    try:
        return subprocess.run(probe, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@functools.cache
def unmet(need: str) -> str | None:
    """None when the machine meets ``need``, else one line: why not, and how to run it."""
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}; known: {', '.join(NEEDS)}")
    purpose, wants = NEEDS[need]
    if "root" in wants and not _have("root"):
        if _user_namespaces():
            return f"needs root for {purpose}: run `make test-lab` (in a user namespace)"
        return f"needs root for {purpose}: run `sudo make test-lab`"
    missing = [w for w in wants if w != "root" and not _have(w)]
    if not missing:
        return None
    tools = " and ".join(NAMES.get(m, f"`{m}`") for m in missing)
    packages = " ".join(sorted({PACKAGES[m] for m in missing}))
    command = "sudo make test-lab" if "root" in wants else "make test"
    return (
        f"needs {tools} for {purpose}: install it (`sudo apt-get install {packages}`),"
        f" then run `{command}`"
    )


def require(need: str) -> None:
    """Skip the calling test module, with :func:`unmet`'s line, unless ``need`` is met."""
    reason = unmet(need)
    if reason:
        pytest.skip(reason, allow_module_level=True)
