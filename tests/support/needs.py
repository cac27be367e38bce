"""What a test needs from the machine, and the one line that says so when it is missing.

A test names its needs with ``@pytest.mark.needs("netns")``; every test under
``tests/lab`` needs root at least. The conftest skips a test whose needs are
not met with the line :func:`unmet` returns, which also says how to run it.
"""

from __future__ import annotations

import ctypes.util
import functools
import os
import shutil

#: need -> (what it is for, what it asks of the machine)
NEEDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "root": ("the LAN lab", ("root",)),
    "netns": ("network namespaces", ("root", "ip", "tc")),
    "tmpfs": ("tmpfs mounts", ("root", "mount", "umount")),
    "libarchive": ("the libarchive provider", ("libarchive",)),
    "unar": ("rarfile's extraction", ("unar",)),
    "tmux": ("the terminal front-end", ("tmux",)),
}

#: how to get what a check looks for, on Debian and Ubuntu
PACKAGES = {
    "ip": "iproute2",
    "tc": "iproute2",
    "mount": "mount",
    "umount": "mount",
    "libarchive": "libarchive13",
    "unar": "unar",
    "tmux": "tmux",
}


@functools.cache
def _have(thing: str) -> bool:
    if thing == "root":
        return os.geteuid() == 0
    if thing == "libarchive":
        return ctypes.util.find_library("archive") is not None
    return shutil.which(thing) is not None


@functools.cache
def unmet(need: str) -> str | None:
    """None when the machine meets ``need``, else one line: why not, and how to run it."""
    if need not in NEEDS:
        raise ValueError(f"unknown need {need!r}; known: {', '.join(NEEDS)}")
    purpose, wants = NEEDS[need]
    if "root" in wants and not _have("root"):
        return f"needs root for {purpose}: run `sudo make test-lab`"
    missing = [w for w in wants if w != "root" and not _have(w)]
    if not missing:
        return None
    tools = " and ".join(f"`{m}`" for m in missing)
    packages = " ".join(sorted({PACKAGES[m] for m in missing}))
    command = "sudo make test-lab" if "root" in wants else "make test"
    return (
        f"needs {tools} for {purpose}: install it (`sudo apt-get install {packages}`),"
        f" then run `{command}`"
    )
