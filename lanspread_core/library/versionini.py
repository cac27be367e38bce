"""Reading ``version.ini``, the download sentinel that names a game's version.

Accepted forms (first match wins), documented in ``docs/catalog.md``:

* a bare version on the first non-empty line: ``1.2.0``
* ``version = 1.2.0`` (or ``version: 1.2.0``) on any line, with or without an
  INI section header such as ``[game]``; the key is case-insensitive.

Blank lines and lines starting with ``;`` or ``#`` are ignored. A UTF-8 BOM is
tolerated. Anything else is a :class:`VersionFileError` with one sentence.
"""

from __future__ import annotations

import re
from pathlib import Path

from lanspread_core.errors import LanspreadError
from lanspread_core.library.layout import SENTINEL

_KEYED = re.compile(r"^\s*version\s*[=:]\s*(\S.*?)\s*$", re.IGNORECASE)
_BARE = re.compile(r"^[\w.+-]{1,64}$")
MAX_BYTES = 4096


class VersionFileError(LanspreadError):
    pass


def parse_version(text: str) -> str:
    lines = [
        ln.strip()
        for ln in text.lstrip("\ufeff").splitlines()
        if ln.strip() and not ln.strip().startswith((";", "#"))
    ]
    for line in lines:
        if m := _KEYED.match(line):
            return m.group(1)
    body = [ln for ln in lines if not (ln.startswith("[") and ln.endswith("]"))]
    if body and _BARE.match(body[0]):
        return body[0]
    raise VersionFileError("has no version (expected a line like '1.2.0' or 'version = 1.2.0')")


def read_version(path: Path) -> str:
    """The version named by ``path``; :class:`VersionFileError` says what is wrong."""
    try:
        raw = path.read_bytes()[: MAX_BYTES + 1]
    except OSError as exc:
        raise VersionFileError(f"{path} cannot be read: {exc.strerror}") from exc
    if len(raw) > MAX_BYTES:
        raise VersionFileError(f"{path} is larger than {MAX_BYTES} bytes; not a version file")
    try:
        return parse_version(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise VersionFileError(f"{path} is not UTF-8 text") from exc
    except VersionFileError as exc:
        raise VersionFileError(f"{path} {exc}") from exc


def check_version_file(root: Path) -> str | None:
    """The version game root ``root`` says it holds, or None when unreadable or absent."""
    try:
        return read_version(root / SENTINEL)
    except VersionFileError:
        return None
