"""Lanspread archive provider built on libarchive (through libarchive-c).

It exists so a peer without the unrar library can still install and stream
most games: libarchive reads RAR5 (solid too), non-solid RAR3, multi-volume
RAR sets, zip, 7z and tar in one forward pass. What it cannot read it declines
at probe time, from headers, with a reason a user can act on.

The hook lives in :mod:`lanspread_libarchive.plugin`, the work in
:mod:`lanspread_libarchive.provider`. Nothing is imported here: loading the
entry point must not load libarchive.
"""
