"""The first moments of an accepted connection: the handshake up to Auth, and which room.

A live server holding several events cannot hand a new connection to a room
until it knows the event, and a participant's first words do not say it: it
says ``Hello``, waits for ``Welcome``, may ``Ping`` (Intelligent Server
Selection compares the servers' round trips and loads) and only then sends
``Auth``. ``Opening`` plays the server's side of that much with a wire
``Connection`` (answering Welcome, and Pong with the server's load), and
holds at most ``limit`` unread bytes, feeding its connection one whole frame
at a time so that nothing after Auth is read. Once Auth is in,
``room_for_participant`` (the event id in the sealed credential's clear
header) or ``room_for_link`` (the link ticket against each room's children)
picks the room, and the shell hands that very ``Connection``, its Hello and
its Auth, and the bytes that followed, to the room's ``Dispatcher``
(``adopt``): each handshake is played once. Or it answers ``refuse()``'s
AuthFailed.
Sans-IO like the core: bytes in, bytes out, ``now`` passed in.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final, TypeVar

from townhall.live.admission import LINK_TICKET_MAGIC, Refusal, check_link
from townhall.ticket import TicketError, sealed_event_id
from townhall.wire import (
    PROTOCOL_VERSION,
    Auth,
    AuthFailed,
    AuthFailure,
    Bye,
    ByeReason,
    Connection,
    ConnectionClosed,
    Hello,
    Load,
    Ping,
    RemoteProtocolError,
    Settings,
    Side,
    State,
    Welcome,
)
from townhall.wire.frames import HEADER_SIZE, parse_header

__all__ = [
    "OPENING_LIMIT",
    "Arrived",
    "Failed",
    "Opening",
    "Waiting",
    "room_for_link",
    "room_for_participant",
]

OPENING_LIMIT: Final = 16 * 1024  # unread bytes before Auth: a ticket is at most 8 KiB
_K = TypeVar("_K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Waiting:
    """No Auth yet: write ``out`` (a Welcome, Pongs) and wait for more."""

    out: bytes


@dataclass(frozen=True, slots=True)
class Arrived:
    """Auth is in: write ``out``, pick the room, hand it ``connection`` (which has read
    Hello and Auth and answered the rest), then ``rest``."""

    out: bytes
    hello: Hello
    auth: Auth
    connection: Connection = field(repr=False)
    rest: bytes  # whatever followed the Auth frame, not yet read

    @property
    def ticket(self) -> bytes:
        return self.auth.ticket


@dataclass(frozen=True, slots=True)
class Failed:
    """The connection ends before a room: write ``out`` (a Bye, if any), then close."""

    out: bytes
    reason: str


class Opening:
    """The server's side of one connection until its Auth arrives."""

    def __init__(
        self,
        *,
        server_name: str,
        now: float,
        settings: Settings | None = None,
        limit: int = OPENING_LIMIT,
    ) -> None:
        self._name = server_name
        self._limit = limit
        self._connection = Connection(Side.SERVER, now=now, settings=settings)
        self._buffer = bytearray()
        self._hello: Hello | None = None
        self._done = False

    def receive(self, data: bytes, now: float, load: Load) -> Waiting | Arrived | Failed:
        """Bytes read (``b""``: EOF); ``load`` is what a Pong reports."""
        if self._done:
            return Failed(b"", "already over")
        if not data:
            self._done = True
            return Failed(b"", "EOF before Auth")
        buffer = self._buffer
        buffer += data
        out = bytearray()
        position = 0
        connection = self._connection
        try:
            while len(buffer) - position >= HEADER_SIZE:
                header = parse_header(buffer, position)
                end = position + HEADER_SIZE + header.length
                if end - position > self._limit:
                    raise RemoteProtocolError(
                        f"a {header.length}-byte {header.channel.name} frame before Auth"
                    )
                if end > len(buffer):
                    break
                frame = bytes(buffer[position:end])
                position = end
                connection.receive_data(frame, now)
                event = connection.next_event()
                if isinstance(event, Hello):
                    self._hello = event
                    version = min(event.version, PROTOCOL_VERSION)
                    out += connection.send(Welcome(version=version, server=self._name))
                elif isinstance(event, Ping):
                    out += connection.send(event.pong(load))
                elif isinstance(event, Auth) and self._hello is not None:
                    self._done = True
                    rest = bytes(buffer[position:])
                    buffer.clear()
                    return Arrived(bytes(out), self._hello, event, connection, rest)
                elif isinstance(event, Bye | ConnectionClosed):
                    self._done = True
                    return Failed(bytes(out), "the peer said Bye")
        except RemoteProtocolError as exc:
            self._done = True
            if connection.state is not State.CLOSED:
                out += connection.send(Bye.for_error(exc))
            return Failed(bytes(out), f"protocol error: {exc}")
        del buffer[:position]
        if len(buffer) > self._limit:
            self._done = True
            return Failed(bytes(out), f"more than {self._limit} bytes before Auth")
        return Waiting(bytes(out))

    def refuse(self, refusal: Refusal) -> bytes:
        """The AuthFailed to write (then close) when no room takes the connection."""
        self._done = True
        return self._connection.send(
            AuthFailed(reason=refusal.reason, message=refusal.message[:1024])
        )

    def timed_out(self) -> bytes:
        """The Bye to write (then close) when Auth did not come in time."""
        self._done = True
        if self._connection.state is State.CLOSED:
            return b""
        return self._connection.send(
            Bye(reason=ByeReason.HANDSHAKE_TIMEOUT, message="no Auth in time")
        )


def room_for_participant(ticket: bytes, rooms: Mapping[int, _K]) -> _K | Refusal:
    """The room of the event named in a sealed credential's clear header.

    Only the header is read here; the room checks the rest (signature,
    validity, the credential list). A ticket for an event this server does not
    hold now gets ``event-not-live``: it may be held elsewhere, or later.
    """
    try:
        event_id = sealed_event_id(ticket)
    except TicketError as error:
        return Refusal(AuthFailure.BAD_TICKET, error.message)
    room = rooms.get(event_id)
    if room is None:
        return Refusal(AuthFailure.EVENT_NOT_LIVE, f"event {event_id} is not live on this server")
    return room


def room_for_link(ticket: bytes, children: Mapping[_K, Mapping[str, str]]) -> _K | Refusal:
    """The room whose assigned children (name -> SHA-256 of the secret) hold this link ticket.

    A sealed credential here is refused (``not-allowed``): a participant
    connection never becomes a server link. A child known to some room but
    with another secret is ``not-allowed``; one known to none,
    ``event-not-live`` (its parent has not been assigned the event yet).
    """
    if not ticket.startswith(LINK_TICKET_MAGIC):
        return Refusal(AuthFailure.NOT_ALLOWED, "a server link needs a server's link ticket")
    known = False
    for room, names in children.items():
        if isinstance(check_link(ticket, names), str):
            return room
        known = known or _names_child(ticket, names)
    if known:
        return Refusal(AuthFailure.NOT_ALLOWED, "not a child server of this event here")
    return Refusal(AuthFailure.EVENT_NOT_LIVE, "no event here has this child server")


def _names_child(ticket: bytes, names: Mapping[str, str]) -> bool:
    name = ticket[len(LINK_TICKET_MAGIC) :].partition(b"\x00")[0]
    return name.decode("ascii", "replace") in names
