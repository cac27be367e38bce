"""Lanspread's RAR provider: reads ``*.eti`` game archives with the official unrar library.

The hook lives in :mod:`lanspread_unrar.plugin` (the ``lanspread`` entry
point); the work in :mod:`lanspread_unrar.provider`. Nothing is imported
here: loading the entry point must not load rarfile or the unrar library.
"""
