"""``Dispatcher``: runs an ``EventRoom`` over wire ``Connection``s and an ``Outbox``.

The one place where the room's commands are carried out, and still sans-IO:
bytes in (``receive``), bytes out (``ready``, ``drain``), and the few things
only a shell can do handed over as actions (``take_actions``: open the link
Up, arm a wakeup, close a transport). The asyncio shell and the tests' router
are then a loop that moves bytes and calls these methods; neither needs to
know a message.

What it does between the two:

- bytes to events: each connection's ``next_event`` becomes
  ``MessageReceived``, ``MediaReceived`` or ``ConnectionLost``; a peer that
  breaks the protocol gets ``Bye.for_error`` and is closed;
- commands to bytes: every frame goes through that connection's
  ``Connection.send`` (which checks it may be sent now, and gives back the
  bytes encoded once for all) into the ``Outbox``; a frame for a connection
  that is already closing is skipped; media is pushed as droppable;
- a connection whose control or chat overflows its queue is closed as too
  slow, and the room is told it is lost;
- a listener whose VIDEO the ``Outbox`` began dropping until a keyframe makes
  the room ask the stream's owner for one (``KeyFramesWanted``);
- the round trips a server link's ``Connection`` timed go out by the peer
  server's name (``take_round_trips``), for the link RTT metric;
- a participant whose media the ``Outbox`` dropped is told what it missed
  (``MediaDropped``), at most once per ``NOTICE_INTERVAL``: at the end of a
  pass when one is due, or at a wakeup asked for then. Server links are never
  told: each server tells its own participants.

docs/live.md, "Running a room", shows the shell's loop.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Final

from townhall.live.events import (
    CloseConnection,
    Command,
    ConnectionLost,
    ConnectUpstream,
    ConnId,
    Event,
    Greeted,
    KeyFramesWanted,
    MediaReceived,
    MessageReceived,
    PassEnded,
    RequestWakeup,
    SendMediaTo,
    SendTo,
    SendToMany,
    TimerFired,
    UpstreamConnected,
    UpstreamLost,
)
from townhall.live.outbox import Drops, Outbox
from townhall.live.room import EventRoom
from townhall.wire import (
    NEED_DATA,
    Auth,
    Bye,
    ByeReason,
    Connection,
    ConnectionClosed,
    EncodedMessage,
    Hello,
    MediaDropped,
    MediaFrame,
    RemoteProtocolError,
    Role,
    Settings,
    Side,
    State,
    StreamDrops,
    encode_message,
)
from townhall.wire.messages import MAX_STREAMS

__all__ = ["MAX_ROUND_TRIPS", "NOTICE_INTERVAL", "Action", "Dispatcher", "media_dropped"]

NOTICE_INTERVAL: Final = 1.0
"""Seconds between two rounds of ``MediaDropped``: a participant gets at most one a second."""
MAX_ROUND_TRIPS: Final = 1024
"""Link round trips held for ``take_round_trips`` at most; the shell takes them each pass."""
_U32_MAX: Final = 0xFFFF_FFFF

Action = ConnectUpstream | RequestWakeup | CloseConnection
"""What only the shell can do: connect, arm a timer, close a transport (after writing
what ``drain`` still gives for it)."""

_DONE = (State.CLOSED, State.ERROR)


class Dispatcher:
    def __init__(
        self, room: EventRoom, *, outbox: Outbox | None = None, settings: Settings | None = None
    ) -> None:
        self.room = room
        self.outbox = outbox if outbox is not None else Outbox()
        self._settings = settings if settings is not None else Settings()
        self._connections: dict[ConnId, Connection] = {}
        self._actions: list[Action] = []
        self._next_notices = float("-inf")  # when the next round of MediaDropped may go
        self._notice_wakeup: float | None = None  # a wakeup asked for it, not yet fired
        self._round_trips: list[tuple[str, float]] = []

    # -- the shell's calls ------------------------------------------------------------

    def accept(self, conn: ConnId, now: float) -> None:
        """A participant or a child server connected to us."""
        self._connections[conn] = Connection(Side.SERVER, now=now, settings=self._settings)

    def adopt(
        self,
        conn: ConnId,
        connection: Connection,
        hello: Hello,
        auth: Auth,
        now: float,
        wall: float | None = None,
    ) -> None:
        """A connection whose handshake the shell played up to ``Auth`` (``routing.Opening``):
        ``connection`` answered Hello and Pings and read ``auth``; the room takes it from
        there. Feed what followed the Auth frame with ``receive``."""
        self._connections[conn] = connection
        if hello.role is Role.SERVER_LINK:
            self.outbox.mark_link(conn)
        self._run(Greeted(conn, hello), now, wall)
        if self._connections.get(conn) is connection:
            self._run(MessageReceived(conn, auth), now, wall)

    def upstream_connected(self, conn: ConnId, now: float) -> None:
        """The transport asked for by ``ConnectUpstream`` is up."""
        self._connections[conn] = Connection(Side.CLIENT, now=now, settings=self._settings)
        self.outbox.mark_link(conn)
        self._run(UpstreamConnected(conn), now)

    def upstream_failed(self, now: float) -> None:
        """The transport asked for by ``ConnectUpstream`` could not be opened."""
        self._run(UpstreamLost(), now)

    def receive(self, conn: ConnId, data: bytes, now: float, wall: float | None = None) -> None:
        """Bytes read from ``conn`` (``b""``: EOF). ``now`` is the timers' clock, ``wall``
        the Unix time (``EventRoom.handle``); so for every method here."""
        connection = self._connections.get(conn)
        if connection is None:
            return
        connection.receive_data(data, now)
        self._read(conn, connection, now, wall)
        samples = connection.take_round_trips()
        if samples:
            peer = self.room.link_peer(conn)
            if peer is not None and len(self._round_trips) < MAX_ROUND_TRIPS:
                self._round_trips.extend((peer, rtt) for rtt in samples)

    def take_round_trips(self) -> list[tuple[str, float]]:
        """Round trips measured on server links since the last call: (the peer server's
        name, seconds), from the timed Pings of ``Settings.link_rtt_interval``. At most
        ``MAX_ROUND_TRIPS`` wait for a shell that does not ask; later ones are lost."""
        taken, self._round_trips = self._round_trips, []
        return taken

    def _read(self, conn: ConnId, connection: Connection, now: float, wall: float | None) -> None:
        while self._connections.get(conn) is connection:
            try:
                event = connection.next_event()
            except RemoteProtocolError as exc:
                self._push(conn, connection.send(Bye.for_error(exc)))
                self._finish(conn, f"protocol error: {exc}", now)
                return
            if event is NEED_DATA:
                return
            if isinstance(event, ConnectionClosed):
                self._finish(conn, event.reason.value, now)
                return
            if isinstance(event, MediaFrame):
                self._run(MediaReceived(conn, event), now, wall)
                continue
            if isinstance(event, Hello) and event.role is Role.SERVER_LINK:
                self.outbox.mark_link(conn)
            self._run(MessageReceived(conn, event), now, wall)

    def lost(self, conn: ConnId, now: float) -> None:
        """The transport of ``conn`` is closed (by either side); forget it."""
        self.outbox.discard(conn)
        if self._connections.pop(conn, None) is not None:
            self._run(ConnectionLost(conn), now)

    def handle(self, event: Event, now: float, wall: float | None = None) -> None:
        """Any other room event: ``AssignmentReceived``, ``TimerFired``, ``EventEnded``."""
        if isinstance(event, TimerFired) and self._notice_wakeup is not None:
            if now >= self._notice_wakeup:
                self._notice_wakeup = None  # the notices go at the end of this pass
        self._run(event, now, wall)

    def end_pass(self, now: float, wall: float | None = None) -> None:
        """The shell read what it had this pass and is about to write: the room sends what
        it holds back for once a pass (``PassEnded``), and participants whose media was
        dropped are told, if it is time. Call it before ``ready``/``drain``."""
        self._run(PassEnded(), now, wall)
        if self.outbox.has_drops():
            self._tell_dropped(now)

    def shutdown(self, message: str = "the server is shutting down") -> None:
        """Say ``Bye shutdown`` on every connection and close them all (the server stops).

        The room is not told: it goes with the server. Participants then look
        for another server, and a child link Up or Down reconnects with backoff.
        """
        for conn, connection in list(self._connections.items()):
            if connection.state is not State.CLOSED:
                self._push(conn, connection.send(Bye(reason=ByeReason.SHUTDOWN, message=message)))
            self._actions.append(CloseConnection(conn, "shutdown"))
        self._connections.clear()

    def timer(self, conn: ConnId) -> float | None:
        """When ``handle_timer(conn, …)`` is next due (keepalive, timeouts)."""
        connection = self._connections.get(conn)
        return None if connection is None else connection.get_timer()

    def handle_timer(self, conn: ConnId, now: float) -> None:
        connection = self._connections.get(conn)
        if connection is None:
            return
        data = connection.handle_timer(now)
        if data:
            self._push(conn, data)
        if connection.state is State.CLOSED:
            self._finish(conn, "timeout", now)

    def ready(self) -> list[ConnId]:
        """Connections with bytes to write: call ``drain`` for each, once per loop pass."""
        return self.outbox.ready()

    def drain(self, conn: ConnId, now: float) -> bytes:
        """What to write to ``conn`` now: its queue, less media older than the age limit.

        Media dropped here is told at the next round of notices: a wakeup is
        asked for it (carry out ``take_actions`` after the drains too)."""
        return self.drain_each((conn,), now)[0]

    def drain_each(self, conns: Sequence[ConnId], now: float) -> list[bytes]:
        """``drain`` for each of ``conns``: what to write to each, in their order."""
        written = self.outbox.drain_each(conns, now)
        if self._notice_wakeup is None and self.outbox.has_drops():
            self._wake_for_notices(max(now, self._next_notices))
        return written

    def take_actions(self) -> list[Action]:
        actions, self._actions = self._actions, []
        return actions

    @property
    def connections(self) -> int:
        return len(self._connections)

    # -- carrying out commands ----------------------------------------------------------

    def _run(self, event: Event, now: float, wall: float | None = None) -> None:
        pending: deque[Event] = deque([event])
        while pending:
            for conn in self._execute(self.room.handle(pending.popleft(), now, wall), now):
                pending.append(ConnectionLost(conn))
            holds = self.outbox.take_keyframe_holds()
            if holds:
                pending.append(KeyFramesWanted(tuple(sorted(holds))))

    def _execute(self, commands: list[Command], now: float) -> list[ConnId]:
        """Carry out ``commands``; the connections closed for being too slow."""
        too_slow: list[ConnId] = []
        for command in commands:
            match command:
                case SendToMany(conns=conns, item=item):
                    for conn in conns:
                        if not self._send(conn, item):
                            too_slow.append(conn)
                case SendMediaTo(conns=conns, frame=frame, but=but):
                    connections, channel = self._connections, frame.channel
                    receivers = [
                        conn
                        for conn in conns
                        if (connection := connections.get(conn)) is not None
                        and connection.sends_media(channel)
                        and conn != but
                    ]
                    self.outbox.push_media_to(receivers, frame, now)
                case SendTo(conn=conn, item=item):
                    if not self._send(conn, item):
                        too_slow.append(conn)
                case CloseConnection(conn=conn):
                    if self._connections.pop(conn, None) is not None:
                        self._actions.append(command)
                case ConnectUpstream() | RequestWakeup():
                    self._actions.append(command)
        for conn in too_slow:
            self.outbox.discard(conn)
            self._actions.append(CloseConnection(conn, "too slow: its queue is full"))
        return too_slow

    def _tell_dropped(self, now: float) -> None:
        """Send each participant with dropped media its ``MediaDropped``, if a round is due."""
        if now < self._next_notices:
            self._wake_for_notices(self._next_notices)
            return
        self._next_notices = now + NOTICE_INTERVAL
        notices: list[Command] = []
        for conn in self.outbox.dropping():
            drops = self.outbox.take_drops(conn)
            connection = self._connections.get(conn)
            if (
                drops is not None
                and connection is not None
                and connection.side is Side.SERVER
                and connection.role is Role.PARTICIPANT
                and connection.state is State.OPEN
            ):
                notices.append(SendTo(conn, encode_message(media_dropped(drops))))
        for conn in self._execute(notices, now):
            self._run(ConnectionLost(conn), now)

    def _wake_for_notices(self, at: float) -> None:
        if self._notice_wakeup is not None and self._notice_wakeup <= at:
            return
        self._notice_wakeup = at
        self._actions.append(RequestWakeup(at))

    def _send(self, conn: ConnId, item: EncodedMessage) -> bool:
        connection = self._connections.get(conn)
        if connection is None or connection.state in _DONE:
            return True  # closing: nothing more reaches it
        if self._push(conn, connection.send(item)):
            return True
        del self._connections[conn]
        return False

    def _push(self, conn: ConnId, data: bytes) -> bool:
        return self.outbox.push(conn, data)

    def _finish(self, conn: ConnId, reason: str, now: float) -> None:
        """The connection ended on its own: close the transport, tell the room."""
        if self._connections.pop(conn, None) is None:
            return
        self._actions.append(CloseConnection(conn, reason))
        self._run(ConnectionLost(conn), now)


def media_dropped(drops: Drops) -> MediaDropped:
    """The notice for ``drops``: the streams with the most drops first, as many as fit."""
    most = sorted(drops.streams.items(), key=lambda item: (-item[1], item[0]))[:MAX_STREAMS]
    audio, video = min(drops.audio_frames, _U32_MAX), min(drops.video_frames, _U32_MAX)
    streams = tuple(StreamDrops(stream_id=sid, frames=min(n, _U32_MAX)) for sid, n in most)
    if sum(stream.frames for stream in streams) > audio + video:  # only past 2**32 frames
        streams = ()
    return MediaDropped(audio_frames=audio, video_frames=video, streams=streams)
