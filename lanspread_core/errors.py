"""Errors that reach a user as one clear sentence.

Every error the core or a plugin raises on purpose derives from
:class:`LanspreadError`; the CLI prints ``str(error)`` and exits with
``error.exit_code`` instead of showing a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class LanspreadError(Exception):
    """An expected failure with a message fit for a user."""

    exit_code: int = 1


class UsageError(LanspreadError):
    """The user asked for something that cannot be (bad name, bad path)."""

    exit_code = 2


class PluginError(LanspreadError):
    """A plugin is broken or conflicts with another."""


class ProviderNotFound(UsageError):
    """``--provider NAME`` names no installed provider."""


class NoProviderCanHandle(LanspreadError):
    """Every installed provider declined a game root's archives."""


class ArchiveError(LanspreadError):
    """An archive is corrupt, truncated, encrypted or unreadable."""


class UnsafeEntryError(ArchiveError):
    """An archive entry would write outside its target (or is a link/device)."""


class VerificationError(ArchiveError):
    """Unpacked bytes do not match the size or CRC32 the archive promised."""


class DiskWriteError(LanspreadError):
    """Writing to the local disk failed (full disk, no inodes, read-only)."""


class Cancelled(LanspreadError):
    """The operation was cancelled; raised inside worker threads."""


class CommandError(LanspreadError):
    """A command to a running peer could not be carried out; the message says why."""


def did_you_mean(word: str, known: Iterable[str]) -> str:
    """``"; did you mean cascade?"`` naming the known words closest to a
    mistyped ``word`` (at most three), or ``""`` when none is close."""
    close = difflib.get_close_matches(word, sorted(set(known) - {word}), n=3, cutoff=0.6)
    if not close:
        return ""
    return f"; did you mean {' or '.join(close)}?"
