"""A client and a server Connection joined by an in-memory link, on a hand-stepped clock.

h11's ConnectionPair and aioquic's roundtrip(): real cores on both ends, no
sockets, and time that moves only when a test says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from townhall.wire import (
    NEED_DATA,
    Auth,
    AuthOk,
    Connection,
    ConnectionClosed,
    EncodedMessage,
    Event,
    Hello,
    MediaFrame,
    Message,
    RemoteProtocolError,
    Role,
    Settings,
    Side,
    State,
    Welcome,
)
from townhall.wire.frames import HEADER_SIZE, parse_header
from townhall.wire.messages import decode_message, message_class


def decode_frame(data: bytes) -> Message | MediaFrame:
    """One whole frame, decoded without a connection (so without state checks)."""
    header = parse_header(data)
    if header.length != len(data) - HEADER_SIZE:
        raise RemoteProtocolError(f"{len(data)} bytes hold a frame of {header.length}")
    if header.channel.is_media:
        return MediaFrame.decode(header, data)
    message_type = message_class(header.channel, header.type)
    if message_type is None:
        raise RemoteProtocolError(f"unknown type {header.type}")
    return decode_message(message_type, data[HEADER_SIZE:])


def drain(connection: Connection) -> list[Event]:
    """Every event the connection has now, up to NEED_DATA or its ConnectionClosed."""
    events: list[Event] = []
    while True:
        event = connection.next_event()
        if event is NEED_DATA:
            return events
        events.append(event)
        if isinstance(event, ConnectionClosed):
            return events


@dataclass
class Pair:
    settings: Settings = field(default_factory=Settings)
    now: float = 0.0
    client: Connection = field(init=False)
    server: Connection = field(init=False)

    def __post_init__(self) -> None:
        self.client = Connection(Side.CLIENT, now=self.now, settings=self.settings)
        self.server = Connection(Side.SERVER, now=self.now, settings=self.settings)

    def peer(self, connection: Connection) -> Connection:
        return self.server if connection is self.client else self.client

    def deliver(self, to: Connection, data: bytes) -> list[Event]:
        """Hand bytes to one end (nothing happens for b"": that would be EOF) and drain it."""
        if data:
            to.receive_data(data, self.now)
        return drain(to)

    def client_sends(self, item: Message | EncodedMessage | MediaFrame) -> list[Event]:
        """What the server sees after the client sends ``item``."""
        return self.deliver(self.server, self.client.send(item))

    def server_sends(self, item: Message | EncodedMessage | MediaFrame) -> list[Event]:
        """What the client sees after the server sends ``item``."""
        return self.deliver(self.client, self.server.send(item))

    def hang_up(self, connection: Connection) -> list[Event]:
        """``connection`` closes its transport: the peer reads EOF."""
        peer = self.peer(connection)
        peer.receive_data(b"", self.now)
        return drain(peer)

    def step(self, seconds: float) -> tuple[list[Event], list[Event]]:
        """Move the clock, run both timers, deliver what they send.

        Returns what the client saw and what the server saw.
        """
        self.now += seconds
        from_client = self.client.handle_timer(self.now)
        from_server = self.server.handle_timer(self.now)
        return self.deliver(self.client, from_server), self.deliver(self.server, from_client)

    def open(
        self,
        role: Role = Role.PARTICIPANT,
        name: str = "alice",
        event: str | None = "ev-1",
        moderator: bool = False,
    ) -> None:
        """Hello, Welcome, Auth, AuthOk: both ends OPEN."""
        self.client_sends(Hello(role=role, version=1, client="tests/1"))
        self.server_sends(Welcome(version=1, server="main"))
        self.client_sends(Auth(ticket=b"ticket"))
        self.server_sends(AuthOk(name=name, event=event, moderator=moderator))
        if not (self.client.state is State.OPEN and self.server.state is State.OPEN):
            raise RuntimeError("the handshake did not open both ends")
