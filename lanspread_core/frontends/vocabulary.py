"""The words every front-end uses for games, operations and sizes, in one place.

The console, the client commands and the web page show the same games, so a
state is worded here once: "Installed, not shareable", never a variant. The
module imports nothing heavier than :mod:`lanspread_core.events`, so a web
server can hand the same words to a browser (:func:`game_words`,
:data:`TABLE`) without pulling in rich.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lanspread_core.events import (
    INSTALL_FAILED_AFTER_DOWNLOAD,
    CatalogChanged,
    CatalogRefused,
    OpAllPeersGone,
    OpCancelled,
    OpFailed,
    OpKind,
    RuntimeFailed,
)

#: ``availability`` values of ``list-games`` in words (docs/protocol.md).
AVAILABILITY = {
    "ready": "Ready",
    "downloading": "Downloading",
    "local_only": "Installed, not shareable",
    "busy": "Busy",
    "outdated": "Outdated",
    "unlisted": "Not in catalog",
    "absent": "Not downloaded",
}

#: A running operation's kind as a participle ("Busy — installing").
DOING = {
    OpKind.INSTALL: "installing",
    OpKind.UPDATE: "updating",
    OpKind.UNINSTALL: "uninstalling",
    OpKind.REMOVE_DOWNLOAD: "removing the download",
    OpKind.DOWNLOAD: "downloading",
    OpKind.STREAM_INSTALL: "stream-installing",
}

#: What this peer does with a game for the others (the sharing status).
SHARING = {
    "ready": "Sharing",
    "local_only": "Installed, not shareable",
}
NOT_SHARING = "Not shared"

#: The actions a person can take on a game, by command: the button names.
ACTIONS = {
    "download": "Download",
    "stream-install": "Stream install",
    "install": "Install",
    "update": "Update",
    "uninstall": "Uninstall",
    "remove-download": "Remove download",
    "cancel": "Cancel",
}

#: Operations that can be stopped with ``cancel`` while they run.
CANCELLABLE = frozenset({"download", "stream-install", "install", "update"})

_DECIMAL = ("kB", "MB", "GB", "TB", "PB", "EB")


def plural(n: int, word: str, many: str = "") -> str:
    """``1 peer``, ``2 peers``; ``many`` for a word that does not just take an s
    (``plural(n, "entry", "entries")``)."""
    return f"{n} {word}" if n == 1 else f"{n} {many or word + 's'}"


def size(n: int | None) -> str:
    """Bytes in SI units, one decimal: ``1.5 MB`` (``-`` when unknown)."""
    if n is None:
        return "-"
    if n == 1:
        return "1 byte"
    if n < 1000:
        return f"{n:,} bytes"
    unit = 1000
    for suffix in _DECIMAL:
        unit *= 1000
        if n < unit:
            return f"{1000 * n / unit:,.1f} {suffix}"
    return f"{1000 * n / unit:,.1f} {_DECIMAL[-1]}"


def rate(n: float | None) -> str:
    return "-" if n is None else f"{size(int(n))}/s"


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "-:--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def holders(entry: Mapping[str, Any]) -> int:
    peers = entry.get("peers") or []
    return len(peers) if isinstance(peers, list) else int(peers)


def availability(entry: Mapping[str, Any]) -> str:
    """One ``list-games`` entry's state in words, as a person should read it."""
    active = entry.get("active")
    if active:
        return "Downloading" if active == "download" else f"Busy — {DOING.get(active, active)}"
    paused = entry.get("paused")
    if isinstance(paused, Mapping) and paused.get("total"):
        return paused_words(int(paused.get("bytes") or 0), int(paused["total"]))
    state = entry.get("availability")
    n = holders(entry)
    #: why no peer serves the catalog's version (``list-games`` ``versions``)
    why = entry.get("versions") if not n else None
    if state == "remote":
        return str(why) if why else f"Available from {plural(n, 'peer')}"
    words = AVAILABILITY.get(str(state), str(state))
    if state in ("absent", "outdated") and n:
        words += f" — available from {plural(n, 'peer')}"
    elif state in ("absent", "outdated") and why:
        words += f" — {why}"
    return words


def paused_words(done: int, total: int) -> str:
    """A paused download: ``Paused — 51 %, 1.2 GB of 2.3 GB`` (the units of :func:`size`)."""
    return f"Paused — {100 * done // total} %, {size(done)} of {size(total)}"


def sharing(entry: Mapping[str, Any]) -> str:
    """Whether other peers can fetch this game from here, in words."""
    return SHARING.get(str(entry.get("availability")), NOT_SHARING)


def actions(entry: Mapping[str, Any]) -> list[str]:
    """The commands valid for a ``list-games`` entry now, in button order."""
    active = entry.get("active")
    if active:
        return ["cancel"] if active in CANCELLABLE else []
    state = str(entry.get("availability"))
    downloaded, installed = bool(entry.get("downloaded")), bool(entry.get("installed"))
    from_peers = holders(entry) > 0
    found: list[str] = []
    if from_peers and (not downloaded or state == "outdated"):
        found.append("update" if installed and downloaded else "download")
    if from_peers and not installed and not downloaded:  # with the archives here: Install
        found.append("stream-install")
    if downloaded and not installed:
        found.append("install")
    if downloaded and installed and "update" not in found:
        found.append("update")
    if installed:
        found.append("uninstall")
    if downloaded and not installed:
        found.append("remove-download")
    return found


def game_words(entry: Mapping[str, Any]) -> dict[str, Any]:
    """The words a front-end shows for one game: state, sharing, size, actions."""
    return {
        "state": availability(entry),
        "sharing": sharing(entry),
        "size": size(entry.get("size")),
        "actions": [{"cmd": a, "label": ACTIONS[a]} for a in actions(entry)],
    }


def catalog_news(event: CatalogChanged | CatalogRefused) -> str:
    """A catalog change or a refused party catalog, as one line."""
    if isinstance(event, CatalogRefused):
        return f"party catalog refused ({event.origin}): {event.reason}"
    games = plural(len(event.games), "game")
    if event.source == "party":
        return f"catalog: party catalog seq {event.party_seq} taken ({games})"
    return f"catalog: your catalog file changed ({games})"


def op_name(kind: str) -> str:
    """``remove-download`` -> ``Remove download``."""
    return kind.replace("-", " ").capitalize()


def sentence(text: str) -> str:
    text = " ".join(str(text).split())
    return text if text.endswith((".", "!", "?")) else text + "."


def failure(event: OpFailed | RuntimeFailed) -> str:
    """An operation's failure (``failed``, ``cancelled``, ``all-peers-gone``) or
    the peer's own (``runtime-failed``) as one sentence."""
    if isinstance(event, RuntimeFailed):
        return sentence(f"The peer stopped: {event.error or 'a required service died'}")
    op, game, error = op_name(event.kind), event.game_id or "?", event.error
    if isinstance(event, OpCancelled):
        return sentence(f"{op} of {game} was cancelled")
    if isinstance(event, OpAllPeersGone):
        error = error or "every peer that had it left"
    if error.startswith(f"{game} {INSTALL_FAILED_AFTER_DOWNLOAD}"):
        return sentence(error)  # the download itself did not fail: its files are here
    return sentence(f"{op} of {game} failed: {error or 'no reason given'}")


def _names(paths: list[str], more: int) -> str:
    shown = ", ".join(paths)
    return f"{shown} and {more} more" if more > 0 else shown


def deletion(op: str, game: str, changes: Mapping[str, Any]) -> str:
    """What ``op`` will delete of ``game``, given its ``local-changes`` answer.

    The one wording of the question the CLI asks and the web dialog shows.
    """
    added, changed = int(changes.get("added") or 0), int(changes.get("changed") or 0)
    sample = list(changes.get("sample") or [])
    changed_sample = list(changes.get("changed_sample") or [])
    if op == "remove-download":
        return f"This deletes the downloaded archives of {game}; you can download them again."
    if op == "uninstall":
        files = plural(int(changes.get("files") or 0), "file")
        text = f"This deletes {game}'s local/ folder ({files})."
        if not changes.get("known", True):
            return text + (
                " Lanspread has no record of what the install put there,"
                " so any file of yours in it goes too."
            )
        if added:
            text += (
                f" You added {plural(added, 'file')} since the install, which will be deleted: "
                f"{_names(sample, added - len(sample))}."
            )
        if changed:
            text += (
                f" You changed {plural(changed, 'file')} of the game: "
                f"{_names(changed_sample, changed - len(changed_sample))}."
            )
        return text
    if op == "update":
        text = f"This reinstalls {game} from its archives."
        if not changes.get("known", True):
            return text + (
                " Files you added to local/ are kept; game files you edited are replaced."
            )
        if added:
            text += f" The {plural(added, 'file')} you added to local/ are kept."
        if changed:
            text += (
                f" {plural(changed, 'file')} you changed will be replaced by the archives'"
                " version: "
                f"{_names(changed_sample, changed - len(changed_sample))}."
            )
        return text
    return f"This runs {op} on {game}."


def at_stake(op: str, changes: Mapping[str, Any]) -> bool:
    """Whether ``op`` would delete something the user made (then it asks first)."""
    if op == "uninstall":
        touched = changes.get("added") or changes.get("changed")
        return not changes.get("known", True) or bool(touched)
    if op == "update":
        return bool(changes.get("known", True) and changes.get("changed"))
    return False


def loss(op: str, changes: Mapping[str, Any]) -> str:
    """What of the user's ``op`` would delete, as a phrase: ``3 files you added (a, b, c)``."""
    if not changes.get("known", True):
        return "everything in local/ (Lanspread has no record of what the install put there)"
    parts = []
    added, changed = int(changes.get("added") or 0), int(changes.get("changed") or 0)
    if added and op == "uninstall":
        sample = list(changes.get("sample") or [])
        parts.append(f"{plural(added, 'file')} you added ({_names(sample, added - len(sample))})")
    if changed:
        sample = list(changes.get("changed_sample") or [])
        parts.append(
            f"{plural(changed, 'game file')} you changed ({_names(sample, changed - len(sample))})"
        )
    return " and ".join(parts) or "nothing of yours"


#: Everything a browser needs to word things the same way, sent once.
TABLE: dict[str, Any] = {
    "availability": AVAILABILITY,
    "doing": {str(k): v for k, v in DOING.items()},
    "sharing": SHARING,
    "not_sharing": NOT_SHARING,
    "actions": ACTIONS,
    "cancellable": sorted(CANCELLABLE),
}
