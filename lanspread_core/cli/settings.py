"""Settings that stick: ``lanspread.toml`` in the user's config folder.

One flat TOML file (``platformdirs.user_config_dir("lanspread")``, or the path
in ``LANSPREAD_CONFIG``) with the keys of :data:`KEYS`. A value applies where
no flag and no environment variable gives one (click's ``default_map``, which
ranks below both), so every command that has the matching option takes it.

``tomllib`` only reads, so :func:`set_value` edits the file line by line: the
key's own line is replaced or a new one appended, comments and other keys stay,
and the result is read back before it replaces the file atomically.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import platformdirs

from lanspread_core.config import ANY_ADDRESS, DEFAULT_PORT, default_name
from lanspread_core.errors import LanspreadError, UsageError
from lanspread_core.library.catalog import CATALOG_NAME, ENV_CATALOG
from lanspread_core.library.statedir import ENV_GAMES_DIR, default_games_dir
from lanspread_core.plugin.selection import ENV_PROVIDER
from lanspread_core.system.atomic import write_atomic

ENV_CONFIG = "LANSPREAD_CONFIG"
FILE_NAME = "lanspread.toml"


class SettingsError(LanspreadError):
    pass


@dataclass(frozen=True)
class Key:
    """One setting: its kind, the environment variable that overrides it, what it is."""

    kind: str  # "path", "int" or "str"
    env: str | None
    help: str


KEYS: dict[str, Key] = {
    "games_dir": Key("path", ENV_GAMES_DIR, "the folder holding one folder per game"),
    "catalog": Key("path", ENV_CATALOG, "the catalog file [default: <games dir>/catalog.json]"),
    "name": Key("str", None, "the name other peers show for this one"),
    "port": Key("int", None, "the UDP control port and TCP data port a peer listens on"),
    "provider": Key("str", ENV_PROVIDER, "the archive provider by name, or 'auto'"),
    "party_key": Key("str", None, "the public key of the party whose catalog this peer trusts"),
}


@dataclass(frozen=True)
class Settings:
    """What ``lanspread.toml`` says; None where it says nothing."""

    path: Path
    games_dir: Path | None = None
    catalog: Path | None = None
    name: str | None = None
    port: int | None = None
    provider: str | None = None
    #: the trusted party public key (``lanspread config set party_key KEY``)
    party_key: str | None = None
    #: keys this version does not know, kept as they are
    extra: dict[str, Any] = field(default_factory=dict)

    def value(self, key: str) -> Any:
        return getattr(self, key)


def settings_path() -> Path:
    env = os.environ.get(ENV_CONFIG)
    if env:
        return Path(env).expanduser()
    return Path(platformdirs.user_config_dir("lanspread", appauthor=False)) / FILE_NAME


def load_settings(path: Path | None = None) -> Settings:
    """The settings in ``path`` (default :func:`settings_path`); a missing file is empty.

    :raises SettingsError: the file cannot be read, is not TOML, or a value is wrong.
    """
    path = path or settings_path()
    try:
        data = tomllib.loads(path.read_bytes().decode("utf-8-sig"))
    except FileNotFoundError:
        return Settings(path)
    except OSError as exc:
        raise SettingsError(f"settings file {path} cannot be read: {exc.strerror}") from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(
            f"settings file {path} is not valid TOML ({exc}); fix that line"
        ) from None
    known: dict[str, Any] = {}
    for key, raw in data.items():
        if key in KEYS:
            value = _checked(key, raw, f"settings file {path}: ")
            # a relative path in the file is relative to the file, not to the folder a
            # command happens to run in
            known[key] = path.parent / value if isinstance(value, Path) else value
    extra = {k: v for k, v in data.items() if k not in KEYS}
    return Settings(path, extra=extra, **known)


def _checked(key: str, raw: Any, where: str) -> Any:
    kind = KEYS[key].kind
    if kind == "int":
        if not isinstance(raw, int) or isinstance(raw, bool) or not 0 <= raw <= 65535:
            raise SettingsError(f"{where}{key} must be a port number from 0 to 65535")
        return raw
    if not isinstance(raw, str) or not raw.strip():
        raise SettingsError(f"{where}{key} must be a non-empty string")
    if kind == "path":
        return Path(raw).expanduser()
    return raw.strip()


def parse_value(key: str, text: str) -> Any:
    """``text`` from the command line as the value of ``key``, checked."""
    if key not in KEYS:
        raise UsageError(f"there is no setting {key!r}; the settings are {', '.join(KEYS)}")
    if KEYS[key].kind == "int":
        if not text.strip().isdigit() or not 0 <= int(text) <= 65535:
            raise UsageError(f"{key} must be a port number from 0 to 65535, not {text!r}")
        return int(text)
    if KEYS[key].kind == "path":
        return str(_checked(key, text, "").resolve())  # a relative path would depend on cwd
    return _checked(key, text, "")


def toml_value(value: Any) -> str:
    """``value`` as a TOML basic string or integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    out = []
    for ch in str(value):
        if ch in ('"', "\\"):
            out.append("\\" + ch)
        elif ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


_ESCAPES = {"\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}
_HEADER = "# lanspread settings; 'lanspread config set KEY VALUE' edits this file.\n"


def set_value(key: str, value: Any, path: Path | None = None) -> Path:
    """Set ``key`` to ``value`` (None removes it) in the settings file; its path."""
    path = path or settings_path()
    load_settings(path)  # a broken file is refused, never overwritten
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        text = _HEADER
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    line = None if value is None else f"{key} = {toml_value(value)}\n"
    own = re.compile(rf"^\s*{re.escape(key)}\s*=")
    top = next((i for i, ln in enumerate(lines) if ln.lstrip().startswith("[")), len(lines))
    at = next((i for i in range(top) if own.match(lines[i])), None)
    if at is not None:
        lines[at : at + 1] = [] if line is None else [line]
    elif line is not None:
        lines.insert(top, line)
    new = "".join(lines)
    try:
        parsed = tomllib.loads(new)
    except tomllib.TOMLDecodeError:
        parsed = {}
    if parsed.get(key) != value:
        raise SettingsError(
            f"settings file {path} is laid out in a way 'config set' cannot edit safely;"
            f" edit {key} by hand"
        )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, new.encode("utf-8"))
    except OSError as exc:
        raise SettingsError(f"settings file {path} cannot be written: {exc.strerror}") from None
    return path


@dataclass(frozen=True)
class Shown:
    """One setting as ``config show`` reports it."""

    key: str
    value: Any
    source: str  # "file", "environment (NAME)" or "default"


def effective(settings: Settings) -> list[Shown]:
    """Every setting's value and where it comes from (environment > file > default)."""
    out: list[Shown] = []
    for key, spec in KEYS.items():
        env = os.environ.get(spec.env) if spec.env else None
        if env:
            out.append(Shown(key, env, f"environment ({spec.env})"))
        elif settings.value(key) is not None:
            out.append(Shown(key, _plain(settings.value(key)), "file"))
        else:
            out.append(Shown(key, _default(key, out, settings), "default"))
    return out


def _plain(value: Any) -> Any:
    return str(value) if isinstance(value, Path) else value


def _default(key: str, before: list[Shown], settings: Settings) -> Any:
    if key == "games_dir":
        return str(default_games_dir())
    if key == "catalog":
        games = next(s.value for s in before if s.key == "games_dir")
        return str(Path(games) / CATALOG_NAME)
    if key == "name":
        return default_name(settings.value("port") or DEFAULT_PORT)
    if key == "port":
        return DEFAULT_PORT
    if key == "provider":
        return "auto"
    return None


def default_catalog(catalog: Path | None, games_dir: Path | None) -> Path:
    """The catalog a command uses: the one given, else ``<games dir>/catalog.json``."""
    if catalog is not None:
        return catalog
    return (games_dir or default_games_dir()).expanduser() / CATALOG_NAME


def catalog_in_use(catalog: Path | None, games_dir: Path | None) -> Path | None:
    """What a peer loads: the catalog given, else the games dir's own if it exists."""
    found = default_catalog(catalog, games_dir)
    return found if catalog is not None or found.is_file() else None


# -- the bridge to click: settings become option defaults ---------------------

#: option names ↔ setting names, for options identified by their environment variable
_BY_ENV = {spec.env: key for key, spec in KEYS.items() if spec.env}


def default_map(command: click.Command, settings: Settings) -> dict[str, Any]:
    """``command``'s option defaults from ``settings`` (nested for groups)."""
    if isinstance(command, click.Group):
        nested = {n: default_map(c, settings) for n, c in command.commands.items()}
        return {n: m for n, m in nested.items() if m}
    out: dict[str, Any] = {}
    names = {p.name for p in command.params}
    for param in command.params:
        key = _BY_ENV.get(param.envvar) if isinstance(param.envvar, str) else None
        if key is not None and settings.value(key) is not None and param.name:
            out[param.name] = str(settings.value(key))
    if {"listen", "name"} <= names:  # a command that starts a peer (run_options)
        if settings.name is not None:
            out["name"] = settings.name
        if settings.port is not None:
            out["listen"] = f"{ANY_ADDRESS}:{settings.port}"
    return out


def apply_settings(ctx: click.Context) -> None:
    """Give the subcommand about to run its defaults from ``lanspread.toml``.

    Only a command with an option a setting feeds reads the file, so a broken
    file never stops ``lanspread config`` (the way to mend it) or ``logs``.
    """
    group = ctx.command
    name = ctx.invoked_subcommand
    if not isinstance(group, click.Group) or name is None:
        return
    command = group.commands.get(name)
    if command is None or not _uses_settings(command):
        return
    mapped = default_map(command, load_settings())
    if mapped:
        ctx.default_map = {**(ctx.default_map or {}), name: mapped}


def _uses_settings(command: click.Command) -> bool:
    if isinstance(command, click.Group):
        return any(_uses_settings(c) for c in command.commands.values())
    names = {p.name for p in command.params}
    return {"listen", "name"} <= names or any(
        isinstance(p.envvar, str) and p.envvar in _BY_ENV for p in command.params
    )
