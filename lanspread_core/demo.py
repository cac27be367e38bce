"""``lanspread demo``: a short tour on fixture games in a temporary folder.

Every step is a real ``lanspread`` process, exactly what a user would type,
so the demo shows the product and not a special code path.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click

from lanspread_core.errors import LanspreadError


class DemoFailed(LanspreadError):
    pass


def _step(title: str, *args: str | Path) -> None:
    argv = [sys.executable, "-m", "lanspread_core", *map(str, args)]
    shown = "lanspread " + " ".join(shlex.quote(str(a)) for a in args)
    click.secho(f"\n== {title}", bold=True)
    click.secho(f"$ {shown}", fg="cyan")
    proc = subprocess.run(argv, text=True, capture_output=True, timeout=120)
    click.echo(proc.stdout.rstrip())
    if proc.stderr.strip():
        click.echo(proc.stderr.rstrip(), err=True)
    if proc.returncode != 0:
        raise DemoFailed(f"demo step '{shown}' failed with exit code {proc.returncode}")


@click.command()
@click.option("--keep", is_flag=True, help="Keep the temporary folder and print where it is.")
def demo(keep: bool) -> None:
    """Show Lanspread on fixture games in a temporary folder, then clean up.

    Example: lanspread demo
    """
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="lanspread-demo-"))
    games, state, catalog = tmp / "games", tmp / "state", tmp / "catalog.json"
    lib = ("--games-dir", games, "--state-dir", state, "--catalog", catalog)
    try:
        _step("Installed plugins and providers", "plugins")
        _step(
            "Fixture set alpha: real RAR archives",
            "fixtures",
            "create",
            games,
            "--set",
            "alpha",
            "--catalog",
            catalog,
        )
        _step("The library", "scan", *lib)
        _step("What a provider sees in a game", "inspect", games / "borealis")
        _step(
            "Install with the official unrar library",
            "install",
            "aurora",
            *lib,
            "--provider",
            "unrar",
        )
        _step("Install with libarchive", "install", "borealis", *lib, "--provider", "libarchive")
        _step("Update keeps your own files", "update", "aurora", *lib)
        _step("The library afterwards", "scan", *lib)
        _step("Uninstall", "uninstall", "borealis", *lib)
    finally:
        if keep:
            click.echo(f"\nkept {tmp}")
        else:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
    click.secho(f"\ndemo finished in {time.monotonic() - started:.1f}s", fg="green")
