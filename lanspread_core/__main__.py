"""``python -m lanspread_core`` is the ``lanspread`` command."""

from lanspread_core.cli import main

main()
