"""What goes into an ``EventRoom`` (events, past tense) and what comes out (commands).

Frozen values only: the room never touches a socket, a clock or a random
source, so every input it needs (time, a jitter draw, a decoded message) is
in an event or passed beside it, and everything it wants done is a command
that one place executes (``dispatch.Dispatcher``; the asyncio shell). A
connection is named by an opaque hashable ``ConnId`` that the shell chooses.
This module knows wire messages as payloads, nothing of how they are carried.
docs/live.md, "Event state and the cascade", walks through them.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from townhall.wire import EncodedMessage, Hello, MediaFrame, Message

__all__ = [
    "AssignmentReceived",
    "CloseConnection",
    "Command",
    "ConnId",
    "ConnectUpstream",
    "ConnectionLost",
    "Event",
    "EventEnded",
    "Greeted",
    "KeyFramesWanted",
    "MediaReceived",
    "MessageReceived",
    "PassEnded",
    "RequestWakeup",
    "SendMediaTo",
    "SendTo",
    "SendToMany",
    "ServerRole",
    "TimerFired",
    "UpstreamConnected",
    "UpstreamLost",
]

ConnId = Hashable
"""The shell's name for one connection: any hashable value, opaque to the room."""


class ServerRole(enum.Enum):
    """Where this server stands in the event's tree."""

    MAIN = "main"  # the root: holds the authoritative state and the chat log
    CHILD = "child"  # connects Up to its parent, relays Down to its own listeners


def _frozen_mapping(value: Mapping[str, str]) -> Mapping[str, str]:
    return MappingProxyType(dict(value))


# -- events ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssignmentReceived:
    """The Controller assigned (or re-assigned, with new lists) this event to this server.

    ``credentials`` maps each credential id to the hex SHA-256 of its secret
    (``Credential.secret_sha256``); ``revoked`` lists ids no longer allowed;
    ``event_keys`` are the event's AES keys (several during a rotation).
    A child gets its parent's ``parent`` address and ``link_secret``, what it
    presents Up; a parent gets ``children``: child server name -> hex SHA-256
    of that child's link secret.
    """

    event_id: int
    title: str
    role: ServerRole
    credentials: Mapping[str, str]
    event_keys: tuple[bytes, ...]
    revoked: frozenset[str] = frozenset()
    parent: str | None = None
    link_secret: str | None = None
    children: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "credentials", _frozen_mapping(self.credentials))
        object.__setattr__(self, "children", _frozen_mapping(self.children))
        if self.role is ServerRole.CHILD and (self.parent is None or self.link_secret is None):
            raise ValueError("a child needs its parent's address and a link secret")
        if self.role is ServerRole.MAIN and self.parent is not None:
            raise ValueError("the main server has no parent")


@dataclass(frozen=True, slots=True)
class MessageReceived:
    """A decoded, checked wire message arrived on ``conn`` (a participant or a server link)."""

    conn: ConnId
    message: Message


@dataclass(frozen=True, slots=True)
class Greeted:
    """A connection whose ``Hello`` the shell already answered with ``Welcome`` (its
    opening, before it knew the room): the room takes it as if it had, and its ``Auth``
    follows as a ``MessageReceived``."""

    conn: ConnId
    hello: Hello


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """A media frame arrived on ``conn``; its bytes are relayed as they are."""

    conn: ConnId
    frame: MediaFrame


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """``conn`` is gone (Bye, EOF, a protocol error, a timeout); repeated reports are harmless."""

    conn: ConnId


@dataclass(frozen=True, slots=True)
class UpstreamConnected:
    """The transport asked for by ``ConnectUpstream`` is up, as ``conn`` (the client side)."""

    conn: ConnId


@dataclass(frozen=True, slots=True)
class UpstreamLost:
    """The attempt asked for by ``ConnectUpstream`` failed before a transport existed."""


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A wakeup asked for by ``RequestWakeup`` is due (the time comes with ``handle``)."""


@dataclass(frozen=True, slots=True)
class PassEnded:
    """The shell is done with this pass over its input, and is about to write.

    What the room holds back to send once per pass goes out now: roster
    changes for its participants, merged by name, so that a burst of joins
    costs one update per participant per pass instead of one per join.
    """


@dataclass(frozen=True, slots=True)
class EventEnded:
    """The event is over: everyone is told so and every connection closes."""


@dataclass(frozen=True, slots=True)
class KeyFramesWanted:
    """This server dropped VIDEO of these streams for some listener, which now waits for
    each one's next key frame: ask the owners for one (as a viewer's ``RequestKeyFrame``)."""

    stream_ids: tuple[int, ...]


Event = (
    AssignmentReceived
    | MessageReceived
    | Greeted
    | MediaReceived
    | ConnectionLost
    | UpstreamConnected
    | UpstreamLost
    | TimerFired
    | PassEnded
    | EventEnded
    | KeyFramesWanted
)


# -- commands -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendTo:
    """Send one encoded message to one connection; never dropped."""

    conn: ConnId
    item: EncodedMessage


@dataclass(frozen=True, slots=True)
class SendToMany:
    """Send the same bytes (encoded once) to every connection listed; never dropped."""

    conns: tuple[ConnId, ...]
    item: EncodedMessage


@dataclass(frozen=True, slots=True)
class SendMediaTo:
    """Relay a media frame's bytes to every connection listed but ``but`` (its sender, left
    out here rather than by copying the audience for every frame); a slow one may drop it."""

    conns: tuple[ConnId, ...]
    frame: MediaFrame
    but: ConnId | None = None


@dataclass(frozen=True, slots=True)
class CloseConnection:
    """Write what is queued for ``conn`` (its Bye or AuthFailed last), then close it.

    The room has forgotten ``conn`` already; ``reason`` is for the logs.
    """

    conn: ConnId
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectUpstream:
    """Open a server link to the parent at ``address`` (``host:port``).

    Answer with ``UpstreamConnected(conn)`` once the transport is up, or with
    ``UpstreamLost()`` if it cannot be opened (including a connect timeout).
    """

    address: str


@dataclass(frozen=True, slots=True)
class RequestWakeup:
    """Feed ``TimerFired()`` to the room at time ``at`` (the clock ``handle`` is given)."""

    at: float


Command = SendTo | SendToMany | SendMediaTo | CloseConnection | ConnectUpstream | RequestWakeup
