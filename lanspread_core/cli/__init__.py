"""The ``lanspread`` command line."""
