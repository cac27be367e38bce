"""``lanspread party``: the organizer's key, and publishing the signed party catalog.

``party init`` makes the key (the private half stays in a 0600 file);
``catalog publish`` (also ``party publish``) signs a catalog with it and hands
the result to the peer running on this machine, which offers it to the party.
With no peer running, the signed catalog waits in the state directory for the
next ``lanspread run``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from lanspread_core.cli.client import json_option, state_dir_option
from lanspread_core.cli.common import emit_json
from lanspread_core.errors import UsageError
from lanspread_core.library.catalog import ENV_CATALOG, CatalogError
from lanspread_core.library.party import (
    ENV_PARTY_KEY_FILE,
    PartyError,
    SignedCatalog,
    accepted_path,
    create_key,
    default_key_path,
    key_text,
    load_key,
    published_path,
    read_signed,
    sign,
    write_signed,
)
from lanspread_core.library.statedir import StateDir, locked


def _key_option(func: Any) -> Any:
    return click.option(
        "--key",
        "key_file",
        type=click.Path(dir_okay=False, path_type=Path),
        envvar=ENV_PARTY_KEY_FILE,
        show_envvar=True,
        help=f"The party's private key file. [default: {default_key_path()}]",
    )(func)


@click.group()
def party() -> None:
    """Run a party: one organizer's signed catalog reaches every peer.

    \b
    The organizer, once:
      lanspread party init              (prints the party key to hand out)
      lanspread catalog publish --catalog catalog.json
    Everyone else:
      lanspread run --party lsparty1-...
    """


@party.command("init")
@_key_option
def init(key_file: Path | None) -> None:
    """Make the party key. Its private half stays in a file only you can read.

    Example: lanspread party init
    """
    path = (key_file or default_key_path()).expanduser()
    public = create_key(path)
    click.echo(f"party key made; its private half is in {path} (keep it, never share it)")
    click.echo("give every peer this party key (lanspread run --party KEY):")
    click.echo(public)


@party.command("key")
@_key_option
def show_key(key_file: Path | None) -> None:
    """Print the party key (the public half) to hand out.

    Example: lanspread party key
    """
    path = (key_file or default_key_path()).expanduser()
    click.echo(key_text(load_key(path).public_key()))


def _read_catalog(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        raise UsageError(f"catalog {path} does not exist; give another with --catalog") from None
    except OSError as exc:
        raise UsageError(f"catalog {path} cannot be read: {exc.strerror or exc}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UsageError(f"catalog {path} is not valid JSON: {exc}; fix it, then publish") from None
    if not isinstance(data, dict):
        raise UsageError(f"catalog {path} must be a JSON object with a 'games' list")
    return data


def _next_seq(key_file: Path, key: str, state_dir: Path | None) -> int:
    """One above the last seq of this key published here, or held by this machine's
    peer (running or not): a lost ``.published.json`` never makes a publish a replay."""
    try:
        last = read_signed(published_path(key_file))
    except PartyError as exc:
        raise UsageError(
            f"the last published catalog {published_path(key_file)} is unusable ({exc});"
            " move it away to publish again"
        ) from None
    seqs = [last.seq if last is not None and last.key == key else 0]
    held = _held(state_dir)
    if held is not None and held[0] == key:
        seqs.append(held[1])
    return max(seqs) + 1


def _held(state_dir: Path | None) -> tuple[str, int] | None:
    """The party key and seq this machine's peer holds, if any."""
    from lanspread_core.ipc.client import NoRunningPeer, call

    try:
        catalog = call(state_dir, "status").get("catalog") or {}
        return str(catalog.get("party_key", "")), int(catalog.get("party_seq", 0))
    except NoRunningPeer:
        pass
    try:
        doc = read_signed(accepted_path(StateDir(state_dir)))
    except PartyError:
        return None
    return (doc.key, doc.seq) if doc is not None else None


def _deliver(doc: SignedCatalog, signed_file: Path, state_dir: Path | None) -> str:
    """Hand ``doc`` to the peer running on ``state_dir``, or leave it for the next start."""
    from lanspread_core.ipc.client import NoRunningPeer, call

    try:
        call(state_dir, "publish-catalog", path=str(signed_file))
    except NoRunningPeer:
        state = StateDir(state_dir)
        with locked(state, "lanspread catalog publish"):
            write_signed(accepted_path(state), doc)
        return "no peer runs here; the next 'lanspread run' offers it to the party"
    return "the running peer offers it to the party now"


@click.command("publish")
@click.option(
    "--catalog",
    "catalog_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=ENV_CATALOG,
    show_envvar=True,
    help="The catalog to publish. [default: the setting catalog]",
)
@_key_option
@state_dir_option
@json_option
def publish(
    catalog_file: Path | None, key_file: Path | None, state_dir: Path | None, as_json: bool
) -> None:
    """Sign the catalog with the party key and offer it to every peer.

    Each publish gets the next sequence number; peers take only a catalog
    newer than the one they hold, so publish again after every change.

    Example: lanspread catalog publish --catalog ~/games/catalog.json
    """
    if catalog_file is None:
        raise UsageError("publish needs the catalog: --catalog FILE (or the setting catalog)")
    key_path = (key_file or default_key_path()).expanduser()
    key = load_key(key_path)
    data = _read_catalog(catalog_file.expanduser())
    try:
        doc = sign(key, data, _next_seq(key_path, key_text(key.public_key()), state_dir))
    except CatalogError as exc:
        raise UsageError(f"catalog {catalog_file} cannot be published: {exc}") from None
    signed_file = published_path(key_path)
    write_signed(signed_file, doc)  # first: a seq is never handed out twice
    where = _deliver(doc, signed_file, state_dir)
    games = len(doc.catalog().games)
    if as_json:
        emit_json({"key": doc.key, "seq": doc.seq, "games": games, "signed": str(signed_file)})
        return
    click.echo(f"published party catalog seq {doc.seq} ({games} games); {where}")


party.add_command(publish)
