"""The control-plane messages: typed dataclasses, strict on the way in.

A message travels as one JSON object with a ``type`` (the class name) and one
key per field. :meth:`Message.from_json` checks everything a peer could get
wrong, a missing field, a wrong type, an out-of-range number or an unknown
``type``, and says what in one :class:`~lanspread_core.wire.errors.WireError`
sentence. Keys a message does not define are ignored, so a later protocol
version can add fields without breaking older peers.

Every request carries the sender's ``peer_id`` so that any message refreshes
the sender's ``last_seen``. A request lists the messages that may answer it in
``REPLIES``; an :class:`Error` may answer any request.

Adding a message: define a frozen dataclass deriving from :class:`Message`,
decorate it with :func:`register`, and (for a request) set ``REPLIES``. Its
field types are its validation (see :mod:`lanspread_core.wire.schema`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Self, TypeVar

from lanspread_core.wire.errors import MalformedMessage, UnknownMessageType, WireError
from lanspread_core.wire.framing import MAX_FRAME, encode_frame, loads
from lanspread_core.wire.havemap import MAX_CHARS as MAX_HAVE_CHARS
from lanspread_core.wire.ids import is_peer_id
from lanspread_core.wire.schema import MAX_INT, Check, Record, clip, describe, record

#: 2: GameInfo carries a have-map (partial holders serve verified chunks);
#: 3: peer ids are key hashes, proven by both ends of every control connection;
#: 4: a grant may cover part of what was asked (TransferGrant.granted, .taken),
#: a partial holder's grant carries its have-map (TransferGrant.have), and a Pong
#: carries the responder's library changes as a Ping does;
#: 5: a game under 512 MiB is chunked for 128 chunks, not 64 (library/manifest.py),
#: so the same files give another manifest than a peer of protocol 4 builds
PROTO_VER = 5
_MAX_ERROR_TEXT = 500
#: Ranges one :class:`OpenTransfer` may ask for: 16 GiB of 4 MiB chunks, far more
#: than a planner batch, while bounding what one token makes the server hold.
MAX_TRANSFER_RANGES = 4096
#: Longest relative path a :class:`ByteRange` may name (Linux's PATH_MAX).
MAX_PATH_LENGTH = 4096
_TOKEN = re.compile(r"[0-9a-f]{32}")


PeerId = Annotated[str, Check(is_peer_id, "a peer id (32 lowercase hex digits)")]
NonNegative = Annotated[int, Check(lambda v: 0 <= v <= MAX_INT, "a non-negative integer")]
Port = Annotated[int, Check(lambda v: 0 <= v <= 65535, "a port number from 0 to 65535")]
#: the ``Error`` code of a seed that just sent those chunks to another peer (swarming)
TAKEN = "taken"
HaveMap = Annotated[str, Check(lambda v: len(v) <= MAX_HAVE_CHARS, "a have-map")]
Name = Annotated[
    str, Check(lambda v: 0 < len(v) <= 256, "a non-empty string of at most 256 characters")
]
#: Longest text field another peer may send: a version, a manifest hash.
MAX_TEXT = 256
#: Longest peer name (a host name, as people read it) in ``Hello``.
MAX_PEER_NAME = 64
#: Longest ``message`` of an ``Error`` (ours are clipped to 500).
MAX_ERROR_TEXT = 2000
#: Most entries in ``Hello.features``.
MAX_FEATURES = 64
Text = Annotated[
    str, Check(lambda v: len(v) <= MAX_TEXT, f"a string of at most {MAX_TEXT} characters")
]
PeerName = Annotated[
    str,
    Check(lambda v: len(v) <= MAX_PEER_NAME, f"a name of at most {MAX_PEER_NAME} characters"),
]
Digest = Annotated[str, Check(lambda v: len(v) <= 64, "a digest of at most 64 characters")]
Features = Annotated[
    tuple[Name, ...],
    Check(lambda v: len(v) <= MAX_FEATURES, f"an array of at most {MAX_FEATURES} features"),
]
#: a party public key as text (``lsparty1-`` and 43 characters), or "" for none
PartyKey = Annotated[str, Check(lambda v: len(v) <= 64, "a party key of at most 64 characters")]
ErrorText = Annotated[
    str,
    Check(lambda v: len(v) <= MAX_ERROR_TEXT, f"a message of at most {MAX_ERROR_TEXT} characters"),
]


def is_transfer_token(value: str) -> bool:
    """A data-plane transfer token: 32 lowercase hex digits (128 random bits)."""
    return bool(_TOKEN.fullmatch(value))


Token = Annotated[str, Check(is_transfer_token, "a transfer token (32 lowercase hex digits)")]
RelPath = Annotated[
    str,
    Check(
        lambda v: 0 < len(v) <= MAX_PATH_LENGTH,
        f"a non-empty path of at most {MAX_PATH_LENGTH} characters",
    ),
]
#: indices into an :class:`OpenTransfer`'s ranges
Positions = Annotated[
    tuple[NonNegative, ...],
    Check(
        lambda v: len(v) <= MAX_TRANSFER_RANGES,
        f"an array of up to {MAX_TRANSFER_RANGES} positions",
    ),
]
Seconds = Annotated[float, Check(lambda v: 0 <= v <= 86_400, "a number of seconds up to a day")]


class Message(Record):
    """One control-plane message; ``type`` on the wire is the class name."""

    TYPE: ClassVar[str] = ""
    #: Messages that may answer this one (empty: not a request).
    REPLIES: ClassVar[tuple[type[Message], ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return {"type": self.TYPE, **self._to_fields()}

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Check and build a message from a parsed JSON value.

        On :class:`Message` itself this accepts any registered type; on a
        subclass, only that type.

        :raises WireError: one sentence saying what is wrong.
        """
        if not isinstance(obj, dict):
            raise MalformedMessage(f"a message must be a JSON object, not {describe(obj)}")
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise MalformedMessage("a message needs a string field 'type'")
        msg_cls = MESSAGES.get(kind)
        if msg_cls is None:
            raise UnknownMessageType(f"unknown message type {clip(kind)!r}")
        if cls is not Message and msg_cls is not cls:
            raise MalformedMessage(f"expected a {cls.TYPE} message, not {kind}")
        return msg_cls._from_fields(obj, kind)  # type: ignore[return-value]

    @classmethod
    def is_request(cls) -> bool:
        return bool(cls.REPLIES)

    def accepts_reply(self, reply: Message) -> bool:
        """Whether ``reply`` is a valid answer to this request."""
        return isinstance(reply, (*self.REPLIES, Error))


#: Every message this peer understands, by wire ``type``.
MESSAGES: dict[str, type[Message]] = {}

_M = TypeVar("_M", bound=type[Message])


def register(cls: _M) -> _M:
    """Register a message class under its class name (its wire ``type``)."""
    name = cls.__name__
    if name in MESSAGES:
        raise ValueError(f"message type {name!r} is registered twice")
    cls.TYPE = name
    cls._bind()
    MESSAGES[name] = cls
    return cls


def decode_message(obj: Any) -> Message:
    """Any registered message from a parsed JSON value (see :meth:`Message.from_json`)."""
    return Message.from_json(obj)


# -- records ------------------------------------------------------------------


@record
@dataclass(frozen=True)
class GameInfo(Record):
    """One game a peer serves, as listed in snapshots and deltas.

    ``have`` is the have-map (:mod:`~lanspread_core.wire.havemap`) of the
    chunks of ``manifest_hash`` the peer serves: empty for a peer that holds
    the whole game, a bitmap for one that is downloading it. ``fetching`` is
    the have-map of the chunks such a peer is fetching right now: others take
    them as soon to be held, so a crowd does not all ask the seed for the same
    rare chunk.
    """

    id: Name
    version: Text
    size: NonNegative
    manifest_hash: Text
    have: HaveMap = ""
    fetching: HaveMap = ""

    @property
    def partial(self) -> bool:
        return self.have != ""

    def to_json(self) -> dict[str, Any]:
        return self._to_fields()

    @classmethod
    def from_json(cls, obj: Any, where: str = "GameInfo") -> Self:
        if not isinstance(obj, dict):
            raise MalformedMessage(f"{where} must be a JSON object, not {describe(obj)}")
        return cls._from_fields(obj, where)


@record
@dataclass(frozen=True)
class ByteRange(Record):
    """``length`` bytes of the download file ``path`` (relative, POSIX) at ``offset``.

    The wire only bounds the values; whether the path may be served and the
    range lies inside the file is the serving peer's check
    (:mod:`lanspread_core.dataplane.server`).
    """

    path: RelPath
    offset: NonNegative
    length: NonNegative

    def to_json(self) -> dict[str, Any]:
        return self._to_fields()

    @classmethod
    def from_json(cls, obj: Any, where: str = "ByteRange") -> Self:
        if not isinstance(obj, dict):
            raise MalformedMessage(f"{where} must be a JSON object, not {describe(obj)}")
        return cls._from_fields(obj, where)


Ranges = Annotated[
    tuple[ByteRange, ...],
    Check(
        lambda v: 0 < len(v) <= MAX_TRANSFER_RANGES,
        f"an array of 1 to {MAX_TRANSFER_RANGES} ranges",
    ),
]


# -- replies ------------------------------------------------------------------


@dataclass(frozen=True)
class _Greeting(Message):
    peer_id: PeerId
    proto_ver: NonNegative
    library_rev: NonNegative
    library_digest: Digest
    features: Features
    data_port: Port
    name: PeerName
    control_port: Port


@register
@dataclass(frozen=True)
class HelloAck(_Greeting):
    """The answer to :class:`Hello`: the same facts about the responder."""


@register
@dataclass(frozen=True)
class LibrarySnapshot(Message):
    """Every game the peer serves at ``library_rev``."""

    peer_id: PeerId
    library_rev: NonNegative
    games: tuple[GameInfo, ...]


@register
@dataclass(frozen=True)
class LibraryDelta(Message):
    """Changes from ``from_rev`` to ``to_rev``; applying it twice changes nothing."""

    peer_id: PeerId
    from_rev: NonNegative
    to_rev: NonNegative
    added: tuple[GameInfo, ...]
    updated: tuple[GameInfo, ...]
    removed: tuple[Name, ...]


@register
@dataclass(frozen=True)
class GameManifest(Message):
    """A game's manifest; ``manifest`` is opaque here (checked by
    :meth:`lanspread_core.library.manifest.Manifest.from_json`)."""

    game_id: Name
    version: Text
    manifest: dict[str, Any]


@register
@dataclass(frozen=True)
class TransferGrant(Message):
    """The answer to :class:`OpenTransfer`: present ``token`` on the TCP data
    port within ``expires_in`` seconds, once, to receive the ranges.

    A peer seeding a crowd may grant part of what was asked: ``granted`` lists
    the positions (in the request's ``ranges``, ascending) the token covers,
    and ``taken`` those it sent another peer a moment ago (fetch them from
    there). The rest may be asked for again. Both empty: every range.

    A peer that is downloading the game itself sends its have-map in ``have``,
    so its askers learn what it holds between its pings."""

    token: Token
    data_port: Port
    expires_in: Seconds
    granted: Positions = ()
    taken: Positions = ()
    have: HaveMap = ""


@register
@dataclass(frozen=True)
class Pong(Message):
    """The answer to :class:`Ping`: the responder's revision and digest, and the
    party catalog it holds (key and seq; ``""`` and 0: none)."""

    peer_id: PeerId
    library_rev: NonNegative
    #: the digest of the served listing at ``library_rev`` ("" from a peer that sends none)
    library_digest: Digest = ""
    party_key: PartyKey = ""
    party_seq: NonNegative = 0
    #: as in :class:`Ping`: what changed in the responder's library since the
    #: revision it last told the asker of, when that is small
    changes_from: NonNegative = 0
    changed: tuple[GameInfo, ...] = ()
    removed: tuple[Name, ...] = ()


@register
@dataclass(frozen=True)
class PartyCatalog(Message):
    """The answer to :class:`GetPartyCatalog`: the signed party catalog the responder
    holds, opaque here (checked by :func:`lanspread_core.library.party.verify`)."""

    document: dict[str, Any]


@register
@dataclass(frozen=True)
class Ack(Message):
    pass


@register
@dataclass(frozen=True)
class Error(Message):
    """A request failed. ``code`` is for programs, ``message`` for people.

    Codes the control plane itself sends: ``malformed``, ``too_large``,
    ``unknown_type``, ``not_a_request``, ``busy``, ``internal``. Handlers add
    their own (for instance ``not_found``, ``unavailable``).
    """

    code: Name
    message: ErrorText

    @classmethod
    def of(cls, code: str, message: str) -> Error:
        """An Error with ``message`` clipped to a sane length."""
        if len(message) > _MAX_ERROR_TEXT:
            message = message[: _MAX_ERROR_TEXT - 3] + "..."
        return cls(code, message)

    @classmethod
    def from_wire_error(cls, exc: WireError) -> Error:
        return cls.of(exc.code, str(exc))


# -- requests -----------------------------------------------------------------


@register
@dataclass(frozen=True)
class Hello(_Greeting):
    """The first request on a connection: who the sender is and what it has."""

    REPLIES = (HelloAck,)


@register
@dataclass(frozen=True)
class GetSnapshot(Message):
    REPLIES = (LibrarySnapshot,)

    peer_id: PeerId


@register
@dataclass(frozen=True)
class GetDelta(Message):
    """Changes since ``from_rev``; a responder that cannot produce them (a gap)
    answers with a full :class:`LibrarySnapshot` instead."""

    REPLIES = (LibraryDelta, LibrarySnapshot)

    peer_id: PeerId
    from_rev: NonNegative


@register
@dataclass(frozen=True)
class GetGame(Message):
    REPLIES = (GameManifest,)

    peer_id: PeerId
    game_id: Name


@register
@dataclass(frozen=True)
class StreamInstall(Message):
    """Ask a peer to unpack a game on its side and stream the files (DESIGN §6).

    The answer is a single-use token for the TCP data port, where the files
    arrive as stream frames (:mod:`lanspread_core.wire.streamframes`).
    """

    REPLIES = (TransferGrant,)

    peer_id: PeerId
    game_id: Name


@register
@dataclass(frozen=True)
class OpenTransfer(Message):
    """Ask for byte ranges of a game over the data plane (DESIGN §5).

    Bulk bytes never travel over QUIC: the answer is a single-use token bound
    to this game, this peer and exactly these ranges, which the data
    connection then receives back to back in this order.
    """

    REPLIES = (TransferGrant,)

    peer_id: PeerId
    game_id: Name
    ranges: Ranges


@register
@dataclass(frozen=True)
class Ping(Message):
    """Liveness; carries ``library_rev`` so either side notices a library change,
    and ``library_digest`` so a change that ends where it began costs no sync."""

    REPLIES = (Pong,)

    peer_id: PeerId
    library_rev: NonNegative
    library_digest: Digest = ""
    #: the party catalog the sender holds: its key and seq ("" and 0: none)
    party_key: PartyKey = ""
    party_seq: NonNegative = 0
    #: what changed in the sender's library since ``changes_from``, when it is
    #: small (a downloading peer's have-maps): the games added or updated and the
    #: ids removed. A peer whose copy is at ``changes_from`` applies it and needs
    #: no GetDelta; any other asks as before. Nothing changed: both empty.
    changes_from: NonNegative = 0
    changed: tuple[GameInfo, ...] = ()
    removed: tuple[Name, ...] = ()


@register
@dataclass(frozen=True)
class GetPartyCatalog(Message):
    """Ask for the signed party catalog a peer holds (it advertised a newer seq)."""

    REPLIES = (PartyCatalog,)

    peer_id: PeerId


@register
@dataclass(frozen=True)
class Goodbye(Message):
    """The sender is shutting down: forget it now rather than at its stale timeout."""

    REPLIES = (Ack,)

    peer_id: PeerId


def encode_message(msg: Message, *, max_frame: int = MAX_FRAME) -> bytes:
    """One frame holding ``msg``.

    :raises FrameTooLarge: the message does not fit in ``max_frame`` bytes.
    """
    return encode_frame(msg.to_json(), max_frame=max_frame)


def parse_message(payload: bytes) -> Message:
    """The message in one frame's payload.

    :raises WireError: the payload is not JSON, or not a valid message.
    """
    return decode_message(loads(payload))
