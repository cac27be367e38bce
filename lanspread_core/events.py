"""Typed events: what a running peer tells its front-ends, and their JSON.

Every event is a frozen record; :meth:`Event.to_json` is the one place that
turns it into the JSON object ``lanspread peer`` and the control socket print
(``docs/protocol.md``), and :func:`parse_event` the one place that reads such
an object back, for clients of the control socket. Front-ends match on the
types, never on event names built from strings.

The operation kinds are an enum for the same reason: ``remove-download`` is
``OpKind.REMOVE_DOWNLOAD`` everywhere, and the lifecycle event of an
operation is named ``<kind>-<phase>`` only here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar


class OpKind(StrEnum):
    """The operations a peer runs on one game, at most one per game at a time."""

    INSTALL = "install"
    UPDATE = "update"
    UNINSTALL = "uninstall"
    REMOVE_DOWNLOAD = "remove-download"
    DOWNLOAD = "download"
    STREAM_INSTALL = "stream-install"


#: the local transactions among the operations (no peer involved)
TRANSACTIONS = (OpKind.INSTALL, OpKind.UPDATE, OpKind.UNINSTALL, OpKind.REMOVE_DOWNLOAD)
#: A download whose files all arrived but whose install step failed ends with
#: ``download-failed`` and the error ``"<game> downloaded; install failed: ..."``.
INSTALL_FAILED_AFTER_DOWNLOAD = "downloaded; install failed: "

Json = dict[str, Any]


@dataclass(frozen=True)
class Event:
    """Base of every event; ``tag`` is the JSON ``event`` field."""

    tag: ClassVar[str] = ""

    @property
    def event_name(self) -> str:
        return self.tag

    def to_json(self) -> Json:
        body = {k: v for k, v in self.__dict__.items()}
        return {"event": self.event_name, **body}


# ------------------------------------------------------------------ the peer
@dataclass(frozen=True)
class Ready(Event):
    """The peer listens: the first event of every session."""

    tag: ClassVar[str] = "ready"
    peer_id: str
    name: str
    version: str
    control: str
    listen: list[str]
    data_port: int
    games_dir: str
    state_dir: str


@dataclass(frozen=True)
class LibraryChanged(Event):
    """This peer's library and running operations, complete (a front-end's snapshot)."""

    tag: ClassVar[str] = "library"
    rev: int
    games: list[Json]
    active: list[Json]


@dataclass(frozen=True)
class RuntimeFailed(Event):
    """A required service died; the peer stops."""

    tag: ClassVar[str] = "runtime-failed"
    error: str


@dataclass(frozen=True)
class OutboundTransfers(Event):
    """How many transfers this peer is sending now."""

    tag: ClassVar[str] = "outbound-transfers"
    count: int
    #: who fetches what from here lately: peer_id, name, game_id, bytes, rate
    uploads: list[Json] = field(default_factory=list)


@dataclass(frozen=True)
class EventsDropped(Event):
    """A slow subscriber lost ``count`` events: reconcile from the next snapshot."""

    tag: ClassVar[str] = "events-dropped"
    count: int


@dataclass(frozen=True)
class CatalogChanged(Event):
    """The effective catalog changed: a party catalog was accepted, or the local
    catalog file was edited. ``games`` are its ids; ``party_seq`` 0: no party catalog."""

    tag: ClassVar[str] = "catalog-changed"
    source: str
    games: list[str]
    party_key: str = ""
    party_seq: int = 0


@dataclass(frozen=True)
class CatalogRefused(Event):
    """A party catalog was refused (forged, another key, or not newer); the peer
    keeps the one it has. Said at most once a minute per cause and peer."""

    tag: ClassVar[str] = "catalog-refused"
    origin: str
    reason: str


# ----------------------------------------------------------------- the peers
@dataclass(frozen=True)
class PeerJoined(Event):
    tag: ClassVar[str] = "peer-joined"
    peer: Json


@dataclass(frozen=True)
class PeerLeft(Event):
    tag: ClassVar[str] = "peer-left"
    peer_id: str
    reason: str


@dataclass(frozen=True)
class PeerLibrary(Event):
    """Our copy of a peer's library changed (by a delta or a snapshot)."""

    tag: ClassVar[str] = "peer-library"
    peer_id: str
    rev: int
    via: str
    games: list[str]


# ------------------------------------------------------------ the operations
@dataclass(frozen=True)
class OpEvent(Event):
    """An event of one operation's lifecycle: named ``<kind>-<phase>``."""

    phase: ClassVar[str] = ""
    kind: OpKind
    game_id: str

    @property
    def event_name(self) -> str:
        return f"{self.kind}-{self.phase}"

    def fields(self) -> Json:
        return {}

    def to_json(self) -> Json:
        return {"event": self.event_name, "game_id": self.game_id, **self.fields()}


@dataclass(frozen=True)
class OpBegin(OpEvent):
    phase: ClassVar[str] = "begin"
    #: set when this phase follows another operation (the install after a download)
    after: str | None = None

    def fields(self) -> Json:
        return {} if self.after is None else {"after": self.after}


@dataclass(frozen=True)
class OpProgress(OpEvent):
    phase: ClassVar[str] = "progress"
    done: int = 0
    total: int = 0
    rate: int = 0
    eta: float | None = None
    active_peers: int = 0
    #: bytes per second from each source peer, for downloads
    peers: dict[str, int] | None = None
    #: each source of a download by name: rate, verified bytes, whole or partial
    sources: list[Json] | None = None

    def fields(self) -> Json:
        body: Json = {
            "bytes": self.done,
            "total": self.total,
            "rate": self.rate,
            "eta": self.eta,
            "active_peers": self.active_peers,
        }
        if self.peers is not None:
            body["peers"] = self.peers
        if self.sources is not None:
            body["sources"] = self.sources
        return body


@dataclass(frozen=True)
class OpFinished(OpEvent):
    phase: ClassVar[str] = "finished"
    #: what the operation reports (the command's result without ``game_id``/``op``)
    result: Json = field(default_factory=dict)

    def fields(self) -> Json:
        rest = {k: v for k, v in self.result.items() if k not in ("game_id", "op")}
        return {"op": str(self.kind), **rest}


@dataclass(frozen=True)
class OpFailed(OpEvent):
    phase: ClassVar[str] = "failed"
    error: str = ""

    def fields(self) -> Json:
        return {"op": str(self.kind), "error": self.error}


@dataclass(frozen=True)
class OpCancelled(OpFailed):
    phase: ClassVar[str] = "cancelled"

    def fields(self) -> Json:
        return {**super().fields(), "cancelled": True}


@dataclass(frozen=True)
class OpAllPeersGone(OpFailed):
    """Every source left; the operation's ``failed`` event follows."""

    phase: ClassVar[str] = "all-peers-gone"


@dataclass(frozen=True)
class DownloadSources(Event):
    """The manifest is agreed: what the download fetches, and from whom."""

    tag: ClassVar[str] = "download-sources"
    game_id: str
    total: int
    sources: list[str]
    version: str


@dataclass(frozen=True)
class ChunkRejected(Event):
    """A chunk failed its hash; it is fetched again from another peer."""

    tag: ClassVar[str] = "download-chunk-rejected"
    game_id: str
    peer_id: str
    chunk: int


@dataclass(frozen=True)
class StreamInstallRetry(Event):
    """A stream-install from one peer failed; the next peer is tried."""

    tag: ClassVar[str] = "stream-install-retry"
    game_id: str
    peer_id: str
    error: str


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An event this version does not know (from a newer peer): kept as it came."""

    raw: Json = field(default_factory=dict)

    @property
    def event_name(self) -> str:
        return str(self.raw.get("event", ""))

    def to_json(self) -> Json:
        return dict(self.raw)


# ------------------------------------------------------------------ reading
_SIMPLE: dict[str, type[Event]] = {
    cls.tag: cls
    for cls in (
        Ready,
        LibraryChanged,
        RuntimeFailed,
        OutboundTransfers,
        EventsDropped,
        CatalogChanged,
        CatalogRefused,
        PeerJoined,
        PeerLeft,
        PeerLibrary,
        DownloadSources,
        ChunkRejected,
        StreamInstallRetry,
    )
}
_PHASES: tuple[type[OpEvent], ...] = (
    OpAllPeersGone,
    OpBegin,
    OpProgress,
    OpFinished,
    OpFailed,
    OpCancelled,
)


def _op_event(cls: type[OpEvent], kind: OpKind, body: Mapping[str, Any]) -> OpEvent:
    gid = str(body.get("game_id", ""))
    if cls is OpBegin:
        return OpBegin(kind, gid, body.get("after"))
    if cls is OpProgress:
        return OpProgress(
            kind,
            gid,
            body.get("bytes", 0),
            body.get("total", 0),
            body.get("rate", 0),
            body.get("eta"),
            body.get("active_peers", 0),
            body.get("peers"),
            body.get("sources"),
        )
    if cls is OpFinished:
        return OpFinished(kind, gid, {k: v for k, v in body.items() if k != "event"})
    failed: Callable[..., OpEvent] = cls
    return failed(kind, gid, str(body.get("error", "")))


Reader = Callable[[Mapping[str, Any]], Event]


def _simple(cls: type[Event]) -> Reader:
    return lambda body: cls(**{k: v for k, v in body.items() if k != "event"})


def _phase(cls: type[OpEvent], kind: OpKind) -> Reader:
    return lambda body: _op_event(cls, kind, body)


def _lookup() -> dict[str, Reader]:
    table = {cls.tag: _simple(cls) for cls in _SIMPLE.values()}
    for kind in OpKind:
        for phase in _PHASES:
            if phase is OpAllPeersGone and kind not in (OpKind.DOWNLOAD, OpKind.STREAM_INSTALL):
                continue  # only operations with sources lose them all
            table[f"{kind}-{phase.phase}"] = _phase(phase, kind)
    return table


_TABLE = _lookup()


def parse_event(body: Mapping[str, Any]) -> Event:
    """The typed event of one JSON object; :class:`UnknownEvent` when the name or
    the fields are not what this version knows."""
    make = _TABLE.get(str(body.get("event", "")))
    if make is not None:
        try:
            return make(body)
        except (KeyError, TypeError):
            pass
    return UnknownEvent(dict(body))
