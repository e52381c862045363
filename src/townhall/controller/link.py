"""The control link between a live server and the Controller, as a sans-IO core.

Bytes in, typed messages out, bytes to send: ``LinkConnection`` frames,
encodes, decodes and checks every message and the order they may come in,
and never touches a socket, a clock or a random source; ``service`` (the
Controller's side) and ``agent`` (the live server's side) carry its bytes over
mutual TLS. It knows nothing of events beyond the values it carries, nor of
the database. docs/controller.md, "The control link", documents the bytes.

Why not ``townhall.wire``: an assignment carries an event's whole
credentials list, far past the wire's control frame limit, and this link
carries nothing of a live event's traffic; its own framing keeps both simple.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Annotated, Final, Literal

import msgspec
from msgspec import Meta, Struct

from townhall.wire.messages import Poll, Question
from townhall.wire.names import NOT_IN_LABELS, SERVER_NAME_PATTERN, Upstream, Zone

__all__ = [
    "ALPN",
    "MAX_FRAME",
    "VERSION",
    "Assign",
    "Bye",
    "ByeCode",
    "End",
    "EventReport",
    "Hello",
    "LinkConnection",
    "LinkError",
    "LinkMessage",
    "LocalLinkError",
    "Ping",
    "Pong",
    "RemoteLinkError",
    "Removal",
    "Side",
    "Status",
    "Visit",
    "Welcome",
    "decode_frames",
    "encode_frame",
]

ALPN: Final = "townhall-control/1"
VERSION: Final = 1
MIN_VERSION: Final = 1
HEADER_SIZE: Final = 4
MAX_FRAME: Final = 16 * 1024 * 1024
"""Largest payload: an assignment of some 150,000 credentials fits."""

MAX_CREDENTIALS: Final = 500_000
MAX_CHILDREN: Final = 1000
MAX_EVENTS: Final = 10_000
MAX_EVENT_KEYS: Final = 16
MAX_REMOVALS: Final = 1000
MAX_RECORDED_POLLS: Final = 100  # live.polls.MAX_POLLS
MAX_RECORDED_QUESTIONS: Final = 500  # live.questions.MAX_QUESTIONS
"""Removals in one event's report: the newest, when a main server holds more."""
MAX_VISITS: Final = 5000
"""Visits in one event's report (``townhall.live.attendance.MAX_VISITS``)."""
MAX_STATUS_VISITS: Final = 50_000
"""Visits in one status, all events together: it stays far below ``MAX_FRAME``."""

_EVENT_ID = Annotated[int, Meta(ge=1, le=2**31 - 1)]
_NAME = Annotated[str, Meta(pattern=rf"\A{SERVER_NAME_PATTERN}\Z")]
_CREDENTIAL_ID = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{8,64}$")]
_SHA256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
_SECRET = Annotated[str, Meta(pattern=r"^[A-Za-z0-9_-]{16,128}$")]
# host:port, or [v6]:port; the host is checked further by whoever connects to it.
_ADDRESS = Annotated[
    str, Meta(pattern=r"^(\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9.-]{1,253}):[0-9]{1,5}$")
]
_TEXT = Annotated[str, Meta(max_length=500)]
_ROLE = Literal["main", "child"]
# Unix seconds, 2001 to 2286: a live server's clock, not a peer's fancy.
_UNIX = Annotated[float, Meta(ge=1e9, lt=1e10)]
_NONCE = Annotated[int, Meta(ge=0, le=2**63 - 1)]
_KEY = Annotated[bytes, Meta(min_length=32, max_length=32)]
_NOT_IN_LABELS = re.compile(f"[{NOT_IN_LABELS}]")


class LinkError(Exception):
    """Base of the link's two errors."""


class LocalLinkError(LinkError):
    """Our own code asked for something the link forbids; nothing was sent."""


class RemoteLinkError(LinkError):
    """The peer sent bytes the link forbids; send ``Bye`` if you can, and close."""


class Side(enum.Enum):
    AGENT = "agent"  # the live server: it connects and says Hello
    CONTROLLER = "controller"


class ByeCode(enum.Enum):
    NORMAL = "normal"
    SHUTDOWN = "shutdown"  # the sender is stopping
    UNKNOWN_SERVER = "unknown-server"  # the certificate names no registered server
    BAD_CERTIFICATE = "bad-certificate"  # a certificate the Manager no longer vouches for
    UNSUPPORTED_VERSION = "unsupported-version"
    PROTOCOL_ERROR = "protocol-error"
    REPLACED = "replaced"  # a newer link of the same server took over
    TIMEOUT = "timeout"


class _Message(Struct, frozen=True, forbid_unknown_fields=True):
    pass


class Hello(_Message, tag="hello", frozen=True):
    """Agent → Controller, first: the highest version it speaks, and its software."""

    version: Annotated[int, Meta(ge=1, le=255)]
    software: Annotated[str, Meta(max_length=100)] = ""


class Welcome(_Message, tag="welcome", frozen=True):
    """Controller → agent, first: the version used, who the server is, the keepalive."""

    version: Annotated[int, Meta(ge=1, le=255)]
    name: _NAME  # the certificate's common name, a server registered in the Manager
    address: _ADDRESS  # its registered public address (where it should listen)
    zone: Zone
    keepalive: Annotated[float, Meta(ge=0.05, le=600)]


class Assign(_Message, tag="assign", frozen=True):
    """Controller → agent: hold this event in this role (again: update the lists)."""

    event_id: _EVENT_ID
    title: Annotated[str, Meta(max_length=1000)]
    role: _ROLE
    credentials: Annotated[dict[_CREDENTIAL_ID, _SHA256], Meta(max_length=MAX_CREDENTIALS)]
    revoked: Annotated[list[_CREDENTIAL_ID], Meta(max_length=MAX_CREDENTIALS)]
    event_keys: Annotated[list[_KEY], Meta(min_length=1, max_length=MAX_EVENT_KEYS)]
    center_key: _KEY  # the Center's raw Ed25519 public key, that signs the tickets
    parent: _ADDRESS | None = None
    link_secret: _SECRET | None = None
    children: Annotated[dict[_NAME, _SHA256], Meta(max_length=MAX_CHILDREN)] = {}

    def __post_init__(self) -> None:
        if self.role == "child" and (self.parent is None or self.link_secret is None):
            raise ValueError("a child needs its parent's address and a link secret")
        if self.role == "main" and (self.parent is not None or self.link_secret is not None):
            raise ValueError("the main server has no parent")


class End(_Message, tag="end", frozen=True):
    """Controller → agent: the event is over (or no longer here): close its room."""

    event_id: _EVENT_ID


class Removal(Struct, frozen=True, forbid_unknown_fields=True):
    """A moderator's Remove on the main server: the credentials, and the names shown."""

    credential_id: _CREDENTIAL_ID
    by_credential_id: _CREDENTIAL_ID
    name: Annotated[str, Meta(max_length=200)] = ""
    by_name: Annotated[str, Meta(max_length=200)] = ""


class Visit(Struct, frozen=True, forbid_unknown_fields=True):
    """One participant's stay on the reporting server (Unix seconds; ``left_at`` None: here)."""

    credential_id: _CREDENTIAL_ID
    name: Annotated[str, Meta(max_length=200)]
    joined_at: _UNIX
    left_at: _UNIX | None = None

    def __post_init__(self) -> None:
        if self.left_at is not None and self.left_at < self.joined_at:
            raise ValueError("a visit ends before it begins")


class EventReport(Struct, frozen=True, forbid_unknown_fields=True):
    """One event as a live server holds it (``townhall.live.server.EventStatus``).

    ``removed`` (the main server only) lists the moderators' Removes, each in
    every report until the event ends here; the Controller records new ones
    in the Center, which bars the person from new tickets. ``attendance``
    (every server) lists the visits of the participants connected to it,
    each in every report; ``attendance_missed`` counts joins it could not keep
    or send, so the Center can say the count is incomplete.
    """

    event_id: _EVENT_ID
    role: _ROLE
    upstream: Upstream
    participants: Annotated[int, Meta(ge=0, le=10_000_000)]
    children: Annotated[list[_NAME], Meta(max_length=MAX_CHILDREN)] = []
    removed: Annotated[list[Removal], Meta(max_length=MAX_REMOVALS)] = []
    attendance: Annotated[list[Visit], Meta(max_length=MAX_VISITS)] = []
    attendance_missed: Annotated[int, Meta(ge=0, le=10_000_000)] = 0


class Status(_Message, tag="status", frozen=True):
    """Agent → Controller: every event the server holds now, and its load, at ``at``.

    ``at`` is the server's Unix time when it wrote the status: the last time
    known of its participants, should the server vanish.
    """

    events: Annotated[list[EventReport], Meta(max_length=MAX_EVENTS)]
    participants: Annotated[int, Meta(ge=0, le=10_000_000)] = 0
    capacity: Annotated[int, Meta(ge=0, le=10_000_000)] = 0
    at: _UNIX | None = None


class Record(_Message, tag="record", frozen=True):
    """Agent → Controller: an event's polls (no drafts) and questions as its main server
    holds them, whole (counts, askers), sent when they change; the Controller keeps them
    with the event in the Center. Checked as the wire checks ``PollUpdated`` and
    ``QuestionUpdated``."""

    event_id: _EVENT_ID
    polls: Annotated[list[Poll], Meta(max_length=MAX_RECORDED_POLLS)] = []
    questions: Annotated[list[Question], Meta(max_length=MAX_RECORDED_QUESTIONS)] = []


class Ping(_Message, tag="ping", frozen=True):
    nonce: _NONCE


class Pong(_Message, tag="pong", frozen=True):
    nonce: _NONCE


class Bye(_Message, tag="bye", frozen=True):
    """Either side, last: why the link closes."""

    code: ByeCode
    message: _TEXT = ""


LinkMessage = Hello | Welcome | Assign | End | Status | Record | Ping | Pong | Bye

_ENCODER: Final = msgspec.msgpack.Encoder()
_DECODER: Final = msgspec.msgpack.Decoder(LinkMessage)

# What each side may send once the link is open (after Hello / Welcome).
_OPEN: Final[Mapping[Side, tuple[type[_Message], ...]]] = {
    Side.AGENT: (Status, Record, Ping, Pong, Bye),
    Side.CONTROLLER: (Assign, End, Ping, Pong, Bye),
}
_FIRST: Final[Mapping[Side, tuple[type[_Message], ...]]] = {
    Side.AGENT: (Hello,),
    Side.CONTROLLER: (Welcome, Bye),
}


def encode_frame(message: LinkMessage, *, max_frame: int = MAX_FRAME) -> bytes:
    """One frame: the payload's length (4 bytes, big-endian), then its msgpack.

    Format::

        length   4  unsigned, big-endian, 1 to MAX_FRAME
        payload  n  a msgpack map with "type" naming the message
    """
    payload = _ENCODER.encode(message)
    if len(payload) > max_frame:
        raise LocalLinkError(f"a {type(message).__name__} of {len(payload)} bytes is too large")
    return len(payload).to_bytes(HEADER_SIZE, "big") + payload


def _decode(payload: bytes) -> LinkMessage:
    try:
        message: LinkMessage = _DECODER.decode(payload)
        if isinstance(message, Record):
            for poll in message.polls:
                poll.check()  # what msgspec cannot say: one count per option, no option twice
    except (msgspec.DecodeError, ValueError, RecursionError, OverflowError) as error:
        raise RemoteLinkError(f"a malformed message: {error}"[:300]) from None
    return message


def decode_frames(buffer: bytearray, *, max_frame: int = MAX_FRAME) -> list[LinkMessage]:
    """Take every whole frame off the front of ``buffer`` and decode it.

    A length over ``max_frame`` is refused as soon as its four bytes are in,
    before any of the payload is kept.
    """
    out: list[LinkMessage] = []
    while len(buffer) >= HEADER_SIZE:
        length = int.from_bytes(buffer[:HEADER_SIZE], "big")
        if not 1 <= length <= max_frame:
            raise RemoteLinkError(f"a frame of {length} bytes (1 to {max_frame} allowed)")
        end = HEADER_SIZE + length
        if len(buffer) < end:
            break
        payload = bytes(buffer[HEADER_SIZE:end])
        del buffer[:end]
        message = _decode(payload)
        out.append(message)
    return out


class LinkConnection:
    """One end of a control link: checks who sends what, and when.

    The agent sends ``Hello`` first, the Controller answers ``Welcome`` (or
    ``Bye``); then each side sends only its own kinds (``_OPEN``). After a
    ``Bye`` either way, or the peer's error, the link is closed: nothing more
    is accepted, and the one thing left to send is our ``Bye``.
    Errors: ``RemoteLinkError`` from ``receive_data`` (the peer's fault; the
    link is then closed), ``LocalLinkError`` from ``send`` (ours).
    """

    def __init__(self, side: Side, *, max_frame: int = MAX_FRAME) -> None:
        self.side = side
        self.version: int | None = None
        self.closed = False  # nothing more is received: a Bye either way, an error, the end
        self.finished = False  # our Bye is sent: nothing more is sent
        self._max_frame = max_frame
        self._buffer = bytearray()
        self._sent_first = False
        self._received_first = False

    @property
    def peer(self) -> Side:
        return Side.CONTROLLER if self.side is Side.AGENT else Side.AGENT

    @property
    def open(self) -> bool:
        return self._sent_first and self._received_first and not self.closed

    def send(self, message: LinkMessage) -> bytes:
        """The bytes of ``message``; once the link is closed, only a ``Bye`` may still go."""
        if self.finished or (self.closed and not isinstance(message, Bye)):
            raise LocalLinkError("the link is closed")
        if not isinstance(message, Bye):
            allowed = _OPEN[self.side] if self._sent_first else _FIRST[self.side]
            if self.side is Side.CONTROLLER and not self._received_first:
                raise LocalLinkError("the Controller answers the agent's Hello first")
            if not isinstance(message, allowed):
                raise LocalLinkError(
                    f"{type(message).__name__} is not for the {self.side.value} now"
                )
        data = encode_frame(message, max_frame=self._max_frame)
        if isinstance(message, Welcome):
            self.version = message.version
        self._sent_first = True
        if isinstance(message, Bye):
            self.closed = self.finished = True
        return data

    def receive_data(self, data: bytes) -> list[LinkMessage]:
        """Messages complete with ``data``; ``b""`` is the end of the stream."""
        if self.closed:
            return []
        if not data:
            self.closed = True
            if len(self._buffer):
                raise RemoteLinkError("the link ended in the middle of a frame")
            return []
        self._buffer += data
        try:
            messages = decode_frames(self._buffer, max_frame=self._max_frame)
            out: list[LinkMessage] = []
            for message in messages:
                if self.closed:
                    break
                self._check(message)
                out.append(message)
        except RemoteLinkError:
            self.closed = True
            self._buffer.clear()
            raise
        return out

    def _check(self, message: LinkMessage) -> None:
        if not self._received_first:
            if not isinstance(message, _FIRST[self.peer]):
                raise RemoteLinkError(f"{type(message).__name__} before the greeting")
            self._received_first = True
            if isinstance(message, Welcome):
                if not MIN_VERSION <= message.version <= VERSION:
                    raise RemoteLinkError(f"the Controller chose version {message.version}")
                self.version = message.version
        elif not isinstance(message, _OPEN[self.peer]):
            raise RemoteLinkError(f"{type(message).__name__} from the {self.peer.value}")
        if isinstance(message, Bye):
            self.closed = True


def welcome_version(hello: Hello) -> int | None:
    """The version to use with an agent that offered ``hello.version``; None: none."""
    if hello.version < MIN_VERSION:
        return None
    return min(hello.version, VERSION)


def clean_text(value: str, limit: int = 500) -> str:
    """A peer's free text made safe for a log line."""
    return _NOT_IN_LABELS.sub("?", value)[:limit]
