"""Fault points: where tests kill the process to prove crash safety.

Set ``LANSPREAD_FAULT=<point>`` in a child process and it dies by SIGKILL the
moment it reaches that point, exactly as a power cut would leave it (no
cleanup handlers run). Every point is listed in :data:`POINTS` so the crash
tests can cover all of them.

The same variable also turns on *switches*, misbehaviours that do not kill
(listed in :data:`SWITCHES`, checked with :func:`fault_enabled`):

``serve.corrupt_once``
    The data-plane server (:mod:`lanspread_core.dataplane.server`) flips one
    byte of the first range this process ever sends, so a test can prove
    that the downloader rejects the chunk by its hash and fetches it again
    elsewhere. The variable is read at send time.
"""

from __future__ import annotations

import os
import threading

from lanspread_core.system.portable import kill_self

ENV_FAULT = "LANSPREAD_FAULT"

POINTS: dict[str, tuple[str, ...]] = {
    "install": (
        "install.intent_written",
        "install.staging_created",
        "install.unpacking",
        "install.unpacked",
        "install.promoted",
        "install.marker_removed",
    ),
    "update": (
        "update.intent_written",
        "update.staging_created",
        "update.unpacking",
        "update.unpacked",
        "update.user_files_carried",
        "update.backed_up",
        "update.promoted",
        "update.marker_removed",
        "update.backup_removing",
        "update.backup_removed",
    ),
    "stream-install": (
        "stream-install.intent_written",
        "stream-install.staging_created",
        "stream-install.receiving",
        "stream-install.received",
        "stream-install.promoted",
        "stream-install.marker_removed",
    ),
    "uninstall": (
        "uninstall.intent_written",
        "uninstall.backed_up",
        "uninstall.backup_removing",
        "uninstall.backup_removed",
    ),
    "remove-download": (
        "remove-download.intent_written",
        "remove-download.sentinel_discarded",
        "remove-download.deleting",
        "remove-download.deleted",
    ),
}


#: Non-fatal misbehaviours; see the module docstring for each.
SWITCHES: tuple[str, ...] = ("serve.corrupt_once",)


def fault_enabled(name: str) -> bool:
    """Whether the environment turns on the switch ``name`` (read on every call)."""
    return os.environ.get(ENV_FAULT) == name


_once_lock = threading.Lock()
_fired: set[str] = set()


def fault_once(name: str) -> bool:
    """Whether switch ``name`` is on and has not fired yet in this process (then it has)."""
    if not fault_enabled(name):
        return False
    with _once_lock:
        if name in _fired:
            return False
        _fired.add(name)
        return True


def fault_point(name: str) -> None:
    """Die here, uncleanly, if the environment asks for this point."""
    if os.environ.get(ENV_FAULT) == name:
        kill_self()
