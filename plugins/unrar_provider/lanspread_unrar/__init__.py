"""Lanspread's RAR provider: reads ``*.eti`` game archives with the official unrar library.

The hook lives in :mod:`lanspread_unrar.plugin` (the ``lanspread`` entry
point); the work in :mod:`lanspread_unrar.provider`.
"""

from __future__ import annotations

from lanspread_unrar.provider import UnrarProvider

__all__ = ["UnrarProvider"]
