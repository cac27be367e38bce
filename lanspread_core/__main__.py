"""``python -m lanspread_core`` is the ``lanspread`` command."""

from lanspread_core.cli.main import main

main()
