"""``LiveServer``: the asyncio shell that runs event rooms over one TLS port.

The sans-IO core decides everything (``EventRoom`` and its ``Dispatcher``);
this module only moves bytes and keeps time. One listening port (TLS 1.2+,
ALPN ``townhall/1``), several events: a new connection plays its handshake up
to Auth in ``routing.Opening`` and is then handed to the room of its event.
Reads go straight from ``Protocol.data_received`` into the dispatcher; writes
are never made per frame: anything that makes bytes ready schedules one flush
per event-loop pass, which gives each ready connection whose transport is not
paused one combined write (DESIGN.md: about 1 µs a delivery, where a write per
frame costs 4-7). TLS runs in the protocol over plain TCP (``tls.TLSSession``:
a write is one encryption and one ``transport.write``, not asyncio's SSL
layers). The dispatcher's actions become a TLS connection Up with a timeout,
``loop.call_at`` wakeups, and closes; each connection has its keepalive
timer. docs/live.md, "Running a room", has the whole loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields
from typing import Any, Final, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.live.admission import Refusal
from townhall.live.attendance import Visit
from townhall.live.dispatch import Dispatcher
from townhall.live.events import (
    AssignmentReceived,
    CloseConnection,
    ConnectUpstream,
    EventEnded,
    RequestWakeup,
    ServerRole,
    TimerFired,
)
from townhall.live.fanout import Writer, send_each
from townhall.live.floor import Removed
from townhall.live.limits import FILE_RESERVE, QuietLog, quiet_accept_errors, raise_file_limit
from townhall.live.linkrtt import LinkRoundTrips, RoundTripHistogram
from townhall.live.outbox import Outbox, QueueStats
from townhall.live.room import EventRoom, RoomSettings, Upstream
from townhall.live.routing import Arrived, Failed, Opening, room_for_link, room_for_participant
from townhall.live.tls import HTTP_ALPN, TLSSession
from townhall.live.websocket import CloseCode, WebSocketDoor, origin_of
from townhall.wire import AuthFailure, Load, Poll, PollState, Question, Role, Settings

__all__ = [
    "CONNECT_TIMEOUT",
    "EventMetrics",
    "EventStatus",
    "LiveServer",
    "ServerCounters",
    "split_address",
]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT: Final = 10.0  # seconds for the link Up: TCP, TLS and ALPN
CLOSE_GRACE: Final = 5.0  # a closed transport still flushing is aborted after this
_TIMER_SLACK: Final = 0.005  # fire a connection's timer this late, so it is surely due


@dataclass(frozen=True, slots=True)
class EventStatus:
    """One event on this server, as the Controller link reports it."""

    event_id: int
    role: str  # "main" | "child"
    upstream: str  # room.upstream.value: "none" on the main server
    participants: int  # connected here
    children: tuple[str, ...]  # child servers linked and synced here
    removed: tuple[Removed, ...] = ()  # the moderators' Removes (main server), for the Center
    attendance: tuple[Visit, ...] = ()  # who was connected here, and when
    attendance_missed: int = 0  # joins past the ledger's bound, not kept
    # The event's polls (drafts left out) and questions (main server), kept with the event
    # in the Center; ``record_version`` moves when they change.
    polls: tuple[Poll, ...] = ()
    questions: tuple[Question, ...] = ()
    record_version: int = 0


@dataclass(frozen=True, slots=True)
class ServerCounters:
    """Metrics of the whole server; dropped counts include connections since closed."""

    connections: int
    queued_bytes: int
    dropped_frames: int
    dropped_bytes: int
    media_refused: int


@dataclass(frozen=True, slots=True)
class EventMetrics:
    """One event on this server as its metrics show it (``townhall.live.metrics``)."""

    event_id: int
    role: str  # "main" | "child" | "" (not assigned yet)
    participants: int  # connected here
    links_up: int  # child servers synced here, plus the link Up when it is up
    queues: QueueStats  # every connection's queue counts added up, closed ones included
    media_refused: int  # media dropped because its sender could not speak
    media_late: int  # audio dropped on arrival, too late to relay
    oldest_media_age: float  # seconds the oldest frame still queued here has waited


def split_address(address: str) -> tuple[str, int]:
    """``host:port`` (``[v6]:port`` too) into its parts; ValueError if it is not one."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not a host:port address: {address!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return host, int(port)


class _Room:
    """One event's room, its dispatcher and what the shell keeps beside them."""

    __slots__ = (
        "assignment",
        "connecting",
        "dispatcher",
        "ended",
        "event_id",
        "last_status",
        "room",
        "wakeups",
    )

    def __init__(self, event_id: int, room: EventRoom, dispatcher: Dispatcher) -> None:
        self.event_id = event_id
        self.room = room
        self.dispatcher = dispatcher
        self.assignment: AssignmentReceived | None = None
        self.ended = False
        self.connecting: asyncio.Task[None] | None = None  # the attempt Up in flight
        self.wakeups: set[asyncio.TimerHandle] = set()
        self.last_status: tuple[Upstream, tuple[str, ...], int, int] = (Upstream.NONE, (), 0, 0)


READ_CHUNK = 16 * 1024
"""Bytes read from one connection per event-loop pass. A bound keeps a pass short
under overload: a speaker's backlog is taken a slice at a time, and every pass
ends with the combined writes, so listeners keep getting frames instead of
waiting for the server to work through seconds of input first (redis reads
16 KB per client per pass for the same reason)."""


class _Conn(asyncio.BufferedProtocol):
    """One connection: accepted (a participant or a child) or ours Up to a parent.

    TLS runs here over the plain TCP transport (``TLSSession``). The
    connection is its own ``ConnId`` in its room's dispatcher. Reads go into
    the server's one ``READ_CHUNK`` buffer, so the transport takes at most that
    much per pass.
    """

    __slots__ = (
        "_server",
        "abort_handle",
        "closing",
        "door",
        "lost",
        "opened_at",
        "opening",
        "paused",
        "room",
        "secured",
        "timer",
        "tls",
        "transport",
        "upstream",
        "writer",
    )

    def __init__(self, server: LiveServer, tls: TLSSession, *, upstream: bool = False) -> None:
        self._server = server
        self.tls = tls
        self.upstream = upstream
        self.transport: asyncio.Transport | None = None
        self.room: _Room | None = None
        self.opening: Opening | None = None
        self.door: WebSocketDoor | None = None  # HTTP/1.1: a browser's WebSocket
        self.opened_at = 0.0
        self.paused = False
        self.closing = False
        self.lost = False
        self.timer: asyncio.TimerHandle | None = None
        self.abort_handle: asyncio.TimerHandle | None = None
        self.secured: asyncio.Future[None] | None = None  # the link Up's handshake
        # ``fanout.send_each``'s way to this socket, once in a room; None: ``send``
        self.writer: Writer | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._server._connected(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._server.read_buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.data_received(bytes(self._server.read_buffer[:nbytes]))

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        tls, transport = self.tls, self.transport
        assert transport is not None
        closed = False
        try:
            if not tls.secure:
                out = tls.handshake(data)
                if out:
                    transport.write(out)
                if not tls.secure:
                    return
                self._server._secure(self)
                if self.closing:
                    return
                data = b""
            data, closed = tls.decrypt(data)
            out = tls.pending()
            if out:
                transport.write(out)
        except ssl.SSLError as exc:
            self._server._tls_failed(self, exc)
            return
        if data:
            self._plaintext(data)
        if closed:
            self._plaintext(b"")

    def _plaintext(self, data: bytes) -> None:
        """Decrypted bytes (``b""``: EOF): through the WebSocket door if any, to the core."""
        door = self.door
        if door is None:
            self._deliver(data)
            return
        received = door.receive(data)
        if received.out:
            self.send_plain(received.out)
        if received.upgraded:
            self._server._upgraded(self)
        if received.frames:
            self._deliver(received.frames)
        if received.finished and not self.closing:
            log.debug("live server %s: WebSocket door shut: %s", self._server.name, door.refusal)
            if door.upgraded:
                self._deliver(b"")  # the core ends the connection as at EOF
            else:
                self._server._close(self, linger=True)

    def _deliver(self, data: bytes) -> None:
        room = self.room
        if room is not None:
            try:
                room.dispatcher.receive(self, data, self._server.now(), time.time())
            except Exception:
                self._server._broken(self, "reading")
                return
            if self.upstream:
                # Opening the link moves its timer earlier (its first timed Ping is due).
                self._server._rearm_if_sooner(self)
            self._server._wake(room)
        elif self.opening is not None:
            self._server._opening_data(self, data)

    def send(self, data: bytes) -> None:
        """Write wire bytes: encrypted, and over a WebSocket one message per frame."""
        if self.door is not None:
            data = self.door.send(data)
            if not data:
                return
        transport = self.transport
        assert transport is not None
        try:  # ``send_plain``'s body, one call less for every write of the fan-out
            transport.write(self.tls.encrypt(data))
        except ssl.SSLError as exc:
            self._server._tls_failed(self, exc)

    def send_plain(self, data: bytes) -> None:
        """Encrypt and write (the transport takes what the socket does not)."""
        transport = self.transport
        assert transport is not None
        try:
            transport.write(self.tls.encrypt(data))
        except ssl.SSLError as exc:  # TLS already shut down: this connection is over
            self._server._tls_failed(self, exc)

    def eof_received(self) -> bool | None:
        if self.tls.secure and not self.closing:
            self._plaintext(b"")
        self.closing = True  # the transport closes itself: nothing more is written
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._server._lost(self)

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        if self.room is not None:
            self._server._wake(self.room)


class LiveServer:
    """A live server: one TLS port, one room per assigned event."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        server_ssl: ssl.SSLContext,
        upstream_ssl: ssl.SSLContext,
        capacity: int = 0,
        room_defaults: Mapping[str, Any] | None = None,
        on_status_change: Callable[[], None] | None = None,
        outbox_limits: Mapping[str, Any] | None = None,
        wire_settings: Settings | None = None,
        browser_origins: Iterable[str] = (),
        max_connections: int = 10_000,
        max_pending_per_address: int = 256,
        participant_send_buffer: int = 32 * 1024,
    ) -> None:
        """``room_defaults``: more ``RoomSettings`` fields for every room (tests shrink
        bounds and the backoff); ``outbox_limits``: ``Outbox`` keyword arguments;
        ``wire_settings``: each connection's timers (its ``handshake_timeout`` also
        bounds the wait for Auth before a room is picked); ``browser_origins``: the
        Center's public URLs (or origins) whose pages may open the WebSocket;
        ``max_connections``: all connections at once (participants, links, those
        still in their handshake), ``max_pending_per_address``: connections from one
        address not yet authenticated (docs/live.md, "Connection floods");
        ``participant_send_buffer``: the kernel send buffer (``SO_SNDBUF``) of a
        participant's connection once it is in, and a browser's transport's write
        buffer (0: the system's, which Linux grows to 0.6-1.4 MB for a listener that
        falls behind: seconds of audio no age limit can reach; server links keep it).
        Other connections' transports hold only the rest of one write
        (``_give_writer``)."""
        unknown = set(room_defaults or {}) - {f.name for f in fields(RoomSettings)}
        if unknown or {"server_name", "center_public_key"} & set(room_defaults or {}):
            raise TypeError(f"not room defaults: {sorted(unknown) or 'name or key'}")
        Outbox(**(outbox_limits or {}))  # fail now, not at the first assignment
        if not 0 <= capacity < 2**32:
            raise ValueError("capacity: 0 (no limit) to 2**32 - 1 participants")
        if max_connections < 1 or max_pending_per_address < 1:
            raise ValueError("max_connections and max_pending_per_address: at least 1")
        self.max_connections = max_connections
        self.max_pending_per_address = max_pending_per_address
        if participant_send_buffer < 0:
            raise ValueError("participant_send_buffer: 0 (the system's) or a size in bytes")
        self._participant_send_buffer = participant_send_buffer
        self.name = name
        self.host = host
        self.port = port
        self.capacity = capacity
        self.browser_origins = frozenset(origin_of(url) for url in browser_origins)
        self._server_ssl = server_ssl
        self._upstream_ssl = upstream_ssl
        self._room_defaults = dict(room_defaults or {})
        self._outbox_limits: dict[str, Any] = dict(outbox_limits or {})
        self._wire = wire_settings if wire_settings is not None else Settings()
        self._on_status_change = on_status_change
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.Server | None = None
        self._rooms: dict[int, _Room] = {}
        self._conns: set[_Conn] = set()
        # One read buffer for every connection, not one each (16 KiB a listener, a third
        # of its memory): the loop fills it and calls ``buffer_updated`` straight after,
        # which copies the bytes out before any other connection reads.
        self.read_buffer = memoryview(bytearray(READ_CHUNK))
        self._tasks: set[asyncio.Task[None]] = set()
        self._dirty: set[_Room] = set()
        self._flush_scheduled = False
        self._closing = False
        self._all_lost: asyncio.Future[None] | None = None
        # accepted, not yet handed to a room: oldest first, and by peer address
        self._pending: dict[_Conn, str] = {}
        self._pending_by_address: dict[str, dict[_Conn, None]] = {}
        self._flood_log: QuietLog | None = None
        self._gone = [0, 0, 0]  # queued, dropped frames and bytes of closed connections
        self._link_rtt = LinkRoundTrips()
        self._refused_gone = 0  # media refused by rooms since ended

    # -- the Controller link's calls ------------------------------------------------------

    async def start(self) -> None:
        """Listen; ``self.port`` is then the port bound (give 0 for any).

        The process's open file limit is raised to what ``max_connections``
        needs, or ``max_connections`` lowered to what the hard limit allows.
        """
        self._loop = asyncio.get_running_loop()
        quiet_accept_errors(self._loop)
        self._flood_log = QuietLog(10.0, self._loop.time)
        files = raise_file_limit(self.max_connections + FILE_RESERVE)
        if files - FILE_RESERVE < self.max_connections:
            allowed = max(16, files - FILE_RESERVE)
            log.warning(
                "live server %s: %d open files allowed: at most %d connections, not %d",
                self.name,
                files,
                allowed,
                self.max_connections,
            )
            self.max_connections = allowed
        self._server = await self._loop.create_server(
            lambda: _Conn(self, TLSSession(self._server_ssl, server_side=True)),
            self.host,
            self.port,
            backlog=1024,
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("live server %s listening on %s:%d", self.name, self.host, self.port)

    def assign(self, assignment: AssignmentReceived, center_public_key: Ed25519PublicKey) -> None:
        """The first assignment of an event makes its room; later ones update it.

        An assignment that changes this server's role in the event (main or
        child) replaces the room: its connections are dropped and rejoin.
        """
        self._running()
        room = self._rooms.get(assignment.event_id)
        if room is not None and room.room.role is not assignment.role:
            self._retire(room, drop=True)
            room = None
        if room is None:
            room = self._new_room(assignment.event_id, center_public_key)
            self._rooms[assignment.event_id] = room
        room.assignment = assignment
        room.dispatcher.handle(assignment, self.now(), time.time())
        self._wake(room)
        self._status_changed()

    def end(self, event_id: int) -> None:
        """The event is over here: everyone is told and closed, and the room forgotten."""
        room = self._rooms.get(event_id)
        if room is None:
            return
        room.dispatcher.handle(EventEnded(), self.now(), time.time())
        self._retire(room, drop=False)
        self._status_changed()

    def status(self) -> list[EventStatus]:
        return [
            EventStatus(
                event_id=room.event_id,
                role=room.room.role.value if room.room.role is not None else "",
                upstream=room.room.upstream.value,
                participants=room.room.load().participants,
                children=room.room.children,
                removed=room.room.removed,
                attendance=room.room.attendance.visits,
                attendance_missed=room.room.attendance.missed,
                **self._record(room.room),
            )
            for room in self._rooms.values()
        ]

    @staticmethod
    def _record(room: EventRoom) -> dict[str, Any]:
        if room.role is not ServerRole.MAIN:
            return {}
        return {
            "polls": tuple(p for p in room.polls.values() if p.state is not PollState.DRAFT),
            "questions": tuple(room.questions.values()),
            "record_version": room.record_version,
        }

    def event_metrics(self) -> list[EventMetrics]:
        """What the metrics show of each event this server holds now."""
        now = self.now()
        return [
            EventMetrics(
                event_id=room.event_id,
                role=room.room.role.value if room.room.role is not None else "",
                participants=room.room.load().participants,
                links_up=len(room.room.children) + (room.room.upstream is Upstream.UP),
                queues=room.dispatcher.outbox.totals(),
                media_refused=room.room.media_refused,
                media_late=room.room.media_late,
                oldest_media_age=room.dispatcher.outbox.oldest_media_age(now),
            )
            for room in self._rooms.values()
        ]

    def link_round_trips(self) -> dict[str, RoundTripHistogram]:
        """The round trips of this server's links (parent and children, every event), by
        the peer server's name (``townhall.live.metrics``)."""
        return self._link_rtt.histograms()

    def load(self) -> tuple[int, int]:
        """(participants connected here in all events, capacity; 0: no set limit)."""
        return self._participants(), self.capacity

    def counters(self) -> ServerCounters:
        queued, frames, size = self._gone
        connections = 0
        refused = self._refused_gone
        for conn in self._conns:
            connections += 1
            if conn.room is not None:
                stats = conn.room.dispatcher.outbox.stats(conn)
                queued += stats.queued_bytes
                frames += stats.dropped_frames
                size += stats.dropped_bytes
        refused += sum(room.room.media_refused for room in self._rooms.values())
        return ServerCounters(connections, queued, frames, size, refused)

    async def close(self) -> None:
        """Stop listening, say ``Bye shutdown`` everywhere and close every connection."""
        if self._closing:
            return
        self._closing = True
        if self._server is not None:
            self._server.close()
        for room in list(self._rooms.values()):
            room.dispatcher.shutdown()
            self._retire(room, drop=False)
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        for conn in list(self._conns):
            if conn.room is None:  # still in its Opening
                self._close(conn)
        self._flush()
        if self._conns and self._loop is not None:
            self._all_lost = self._loop.create_future()
            try:
                await asyncio.wait_for(asyncio.shield(self._all_lost), CLOSE_GRACE)
            except TimeoutError:
                for conn in list(self._conns):
                    if conn.transport is not None:
                        conn.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()
        log.info("live server %s closed", self.name)

    # -- rooms ------------------------------------------------------------------------------

    def _running(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._closing:
            raise RuntimeError("the live server is not running: start() it first")
        return self._loop

    def _new_room(self, event_id: int, center_public_key: Ed25519PublicKey) -> _Room:
        fields: dict[str, Any] = {
            "capacity": self.capacity,
            # above any number an earlier main server of this event gave (see RoomSettings)
            "chat_seq_base": int(time.time() * 1_000_000),
            **self._room_defaults,
        }
        settings = RoomSettings(
            server_name=self.name, center_public_key=center_public_key, **fields
        )
        room = EventRoom(settings, jitter=random.random)
        dispatcher = Dispatcher(room, outbox=Outbox(**self._outbox_limits), settings=self._wire)
        return _Room(event_id, room, dispatcher)

    def _retire(self, room: _Room, *, drop: bool) -> None:
        """Forget ``room``: no new connection reaches it; its closes are still carried out.

        With ``drop`` its connections are cut at once (no Bye).
        """
        if self._rooms.get(room.event_id) is room:
            del self._rooms[room.event_id]
        room.ended = True
        self._refused_gone += room.room.media_refused
        for handle in room.wakeups:
            handle.cancel()
        room.wakeups.clear()
        if room.connecting is not None:
            room.connecting.cancel()
            room.connecting = None
        if drop:
            for conn in [c for c in self._conns if c.room is room]:
                room.dispatcher.lost(conn, self.now())
                self._abort(conn)
            room.dispatcher.take_actions()
            return
        self._wake(room)

    def _participants(self) -> int:
        return sum(room.room.load().participants for room in self._rooms.values())

    # -- the loop pass: actions, then one write per ready connection --------------------------

    def _wake(self, room: _Room) -> None:
        self._dirty.add(room)
        if not self._flush_scheduled and self._loop is not None:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        changed = False
        while self._dirty:
            rooms, self._dirty = self._dirty, set()
            for room in rooms:
                try:
                    now = self.now()
                    room.dispatcher.end_pass(now, time.time())
                    self._carry_out(room)
                    dispatcher = room.dispatcher
                    for peer, seconds in dispatcher.take_round_trips():
                        self._link_rtt.observe(peer, seconds)
                    writable = [
                        conn
                        for conn in cast("list[_Conn]", dispatcher.ready())
                        if not conn.paused and not conn.closing
                    ]
                    datas = dispatcher.drain_each(writable, now)
                    for index, left in send_each([conn.writer for conn in writable], datas):
                        self._send_left(writable[index], datas[index], left)
                    self._carry_out(room)  # a drain may ask a wakeup (to tell of its drops)
                except Exception:
                    log.exception("%s: event %d: a pass failed", self.name, room.event_id)
                    continue
                # Joins and leaves are not a change to report at once: they are dated
                # here, and go with the next periodic report (a crowd arriving would
                # otherwise send the whole ledger once per join).
                status = (
                    room.room.upstream,
                    room.room.children,
                    len(room.room.removed),
                    room.room.record_version if room.room.role is ServerRole.MAIN else 0,
                )
                if status != room.last_status and not room.ended:
                    room.last_status = status
                    changed = True
        if changed:
            self._status_changed()

    def _send_left(self, conn: _Conn, data: bytes, left: bytes | BaseException | None) -> None:
        """What ``send_each`` handed back for ``conn``: the wire bytes its socket did not
        take, to the transport; an encryption's failure; or ``data``, for ``send``."""
        if left is None:
            conn.send(data)
        elif isinstance(left, bytes):
            assert conn.transport is not None
            conn.transport.write(left)  # buffered: the connection pauses until it is sent
        elif isinstance(left, ssl.SSLError):
            self._tls_failed(conn, left)
        else:
            log.error("live server %s: a write failed", self.name, exc_info=left)
            self._abort(conn)

    def _carry_out(self, room: _Room) -> None:
        dispatcher = room.dispatcher
        while actions := dispatcher.take_actions():
            for action in actions:
                if isinstance(action, CloseConnection):
                    conn = action.conn
                    assert isinstance(conn, _Conn)
                    self._write(conn, dispatcher.drain(conn, self.now()))
                    self._close(conn)
                    self._count_gone(room, conn)
                    dispatcher.lost(conn, self.now())
                    # the room may hold a roster change for it until the next pass
                    self._wake(room)
                elif isinstance(action, RequestWakeup):
                    self._schedule_wakeup(room, action.at)
                elif isinstance(action, ConnectUpstream):
                    self._connect_up(room, action.address)

    def _status_changed(self) -> None:
        if self._on_status_change is None:
            return
        try:
            self._on_status_change()
        except Exception:
            log.exception("live server %s: on_status_change failed", self.name)

    # -- time ---------------------------------------------------------------------------------

    def now(self) -> float:
        """The cores' clock for timers: the event loop's (monotonic), never the wall
        clock, which jumps when it is set; Unix time goes along for tickets and joins."""
        return self._loop.time() if self._loop is not None else time.monotonic()

    def _schedule_wakeup(self, room: _Room, at: float) -> None:
        if room.ended or self._loop is None:
            return
        handle: asyncio.TimerHandle | None = None

        def fire() -> None:
            if handle is not None:
                room.wakeups.discard(handle)
            if not room.ended:
                room.dispatcher.handle(TimerFired(), self.now(), time.time())
                self._wake(room)

        handle = self._loop.call_at(at + _TIMER_SLACK, fire)
        room.wakeups.add(handle)

    def _arm(self, conn: _Conn) -> None:
        """Call the connection's keepalive and timeout timer when it is next due.

        A connection's timer only ever moves later (bytes heard, a Ping sent),
        so it is armed once and, when it fires, handled and armed again; the one
        exception, the link Up entering OPEN (its first timed Ping is due at once),
        is armed again by ``_rearm_if_sooner``.
        """
        room = conn.room
        if room is None or conn.lost or self._loop is None:
            return
        at = room.dispatcher.timer(conn)
        if at is None:
            return
        delay = max(0.0, at - self.now()) + _TIMER_SLACK
        conn.timer = self._loop.call_later(delay, self._conn_timer, conn)

    def _rearm_if_sooner(self, conn: _Conn) -> None:
        room, timer = conn.room, conn.timer
        if room is None or timer is None or self._loop is None:
            return
        at = room.dispatcher.timer(conn)
        if at is not None and at + _TIMER_SLACK < timer.when():
            timer.cancel()
            conn.timer = None
            self._arm(conn)

    def _conn_timer(self, conn: _Conn) -> None:
        conn.timer = None
        room = conn.room
        if room is None or conn.lost:
            return
        room.dispatcher.handle_timer(conn, self.now())
        self._wake(room)
        self._arm(conn)

    # -- accepted connections: ALPN, the Opening, routing -----------------------------------------

    def _connected(self, conn: _Conn) -> None:
        """TCP is up: the TLS handshake starts (a client speaks first)."""
        assert self._loop is not None and conn.transport is not None
        self._conns.add(conn)
        if conn.upstream:
            self._write_raw(conn, conn.tls.handshake(b""))
            return
        if self._closing:
            self._close(conn)
            return
        if not self._admit(conn):
            return
        conn.opened_at = self.now()
        conn.timer = self._loop.call_later(
            self._wire.handshake_timeout, self._opening_timeout, conn
        )

    def _bound_send_buffer(self, conn: _Conn) -> None:
        """Keep a participant's backlog in the Outbox, where media has an age limit, not in
        the kernel: bytes written to the socket are sent however late they are."""
        size = self._participant_send_buffer
        if not size or conn.transport is None:
            return
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)
            except OSError:
                log.debug("%s: could not set SO_SNDBUF", self.name, exc_info=True)
        conn.transport.set_write_buffer_limits(high=size)  # a browser's; others' are 0

    def _give_writer(self, conn: _Conn) -> None:
        """Let ``fanout.send_each`` write to ``conn``'s socket beside its transport, which
        is safe only while the transport holds nothing: with a high-water mark of zero,
        anything it buffers pauses the connection, and the pass skips paused ones. A
        browser's WebSocket keeps ``send``, which frames its bytes."""
        transport = conn.transport
        if conn.door is not None or transport is None or transport.is_closing():
            return
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        transport.set_write_buffer_limits(high=0)
        write, read = conn.tls.record_writer()
        conn.writer = (write, read, sock.fileno())

    def _admit(self, conn: _Conn) -> bool:
        """Bound the connections: all of them, and the unauthenticated ones per address.

        Over a bound, the oldest unauthenticated connection (of that address,
        or of all) is cut to make room: a flood of idle connections then only
        ever pushes out its own, while participants already in and server
        links stay. With nothing to cut, the newcomer is refused.
        """
        assert conn.transport is not None
        peer = conn.transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        same = self._pending_by_address.setdefault(address, {})
        cut = 0
        while len(same) >= self.max_pending_per_address:
            self._evict(next(iter(same)))
            cut += 1
        while len(self._conns) > self.max_connections and self._pending:
            self._evict(next(iter(self._pending)))
            cut += 1
        if len(self._conns) > self.max_connections:
            self._evict(conn)
            cut += 1
            self._note_flood(cut, address)
            return False
        self._pending[conn] = address
        self._pending_by_address.setdefault(address, {})[conn] = None
        if cut:
            self._note_flood(cut, address)
        return True

    def _note_flood(self, cut: int, address: str) -> None:
        def emit(held: int) -> None:
            log.warning(
                "live server %s: connection bound reached (%d connections, %d from %s "
                "unauthenticated): cut %d unauthenticated (%d such notes held back)",
                self.name,
                len(self._conns),
                len(self._pending_by_address.get(address, ())),
                address,
                cut,
                held,
            )

        if self._flood_log is not None:
            self._flood_log(emit)

    def _settle(self, conn: _Conn) -> None:
        """``conn`` is no longer unauthenticated (handed to a room) or no longer here."""
        address = self._pending.pop(conn, None)
        if address is None:
            return
        same = self._pending_by_address.get(address)
        if same is not None:
            same.pop(conn, None)
            if not same:
                del self._pending_by_address[address]

    def _evict(self, conn: _Conn) -> None:
        self._settle(conn)
        self._conns.discard(conn)  # its descriptor is freed as the abort completes
        self._abort(conn)

    def _secure(self, conn: _Conn) -> None:
        """The TLS handshake is done: ALPN must be ours; then the Opening, or the link Up."""
        if conn.upstream:
            if conn.secured is not None and not conn.secured.done():
                if conn.tls.alpn_ok():
                    conn.secured.set_result(None)
                else:
                    conn.secured.set_exception(ConnectionError("the parent refused ALPN"))
            return
        alpn = conn.tls.alpn()
        if alpn == HTTP_ALPN:
            conn.door = WebSocketDoor(self.browser_origins)
            return
        if not conn.tls.alpn_ok():
            log.info("live server %s: a connection without ALPN townhall/1 refused", self.name)
            self._close(conn)
            return
        conn.opening = Opening(server_name=self.name, now=conn.opened_at, settings=self._wire)

    def _upgraded(self, conn: _Conn) -> None:
        """A browser's WebSocket is open: its frames play the handshake as on the native port."""
        if conn.closing or conn.room is not None:
            return
        conn.opening = Opening(server_name=self.name, now=conn.opened_at, settings=self._wire)

    def _tls_failed(self, conn: _Conn, exc: ssl.SSLError) -> None:
        log.debug("live server %s: TLS failed: %s", self.name, exc)
        if conn.secured is not None and not conn.secured.done():
            conn.secured.set_exception(exc)
        self._write_raw(conn, conn.tls.pending())  # the alert, if TLS made one
        self._close(conn, notify=False)

    def _opening_timeout(self, conn: _Conn) -> None:
        conn.timer = None
        if conn.lost or conn.room is not None:
            return
        if conn.opening is not None:
            self._write(conn, conn.opening.timed_out())
        self._close(conn)

    def _opening_data(self, conn: _Conn, data: bytes) -> None:
        opening = conn.opening
        assert opening is not None
        result = opening.receive(data, self.now(), self._pong_load())
        self._write(conn, result.out)
        if isinstance(result, Failed):
            log.debug("live server %s: closed before Auth: %s", self.name, result.reason)
            self._close(conn)
        elif isinstance(result, Arrived):
            self._route(conn, result)

    def _pong_load(self) -> Load:
        return Load(participants=min(self._participants(), 2**32 - 1), capacity=self.capacity)

    def _route(self, conn: _Conn, arrived: Arrived) -> None:
        opening = conn.opening
        assert opening is not None
        role = arrived.hello.role
        target: _Room | Refusal
        if role is Role.PARTICIPANT:
            target = room_for_participant(arrived.ticket, self._rooms)
            if not isinstance(target, Refusal) and 0 < self.capacity <= self._participants():
                target = Refusal(AuthFailure.SERVER_FULL, "this server is full: try another")
        elif role is Role.SERVER_LINK:
            children = {
                room: room.assignment.children
                for room in self._rooms.values()
                if room.assignment is not None
            }
            target = room_for_link(arrived.ticket, children)
        else:
            target = Refusal(AuthFailure.NOT_ALLOWED, "a live server takes no controller link")
        if conn.door is not None and role is not Role.PARTICIPANT:
            target = Refusal(AuthFailure.NOT_ALLOWED, "only participants connect by WebSocket")
        if isinstance(target, Refusal):
            self._write(conn, opening.refuse(target))
            self._close(conn)
            return
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        self._settle(conn)
        conn.opening = None
        conn.room = target
        if role is Role.PARTICIPANT:
            self._bound_send_buffer(conn)
        self._give_writer(conn)
        dispatcher = target.dispatcher
        now, wall = self.now(), time.time()
        try:
            dispatcher.adopt(conn, arrived.connection, arrived.hello, arrived.auth, now, wall)
            if arrived.rest:
                dispatcher.receive(conn, arrived.rest, now, wall)
        except Exception:
            self._broken(conn, "routing")
            return
        self._arm(conn)
        self._wake(target)

    # -- the link Up ------------------------------------------------------------------------------

    def _connect_up(self, room: _Room, address: str) -> None:
        if room.ended:
            return
        if room.connecting is not None:
            room.connecting.cancel()  # a newer ConnectUpstream supersedes it
        assert self._loop is not None
        task = self._loop.create_task(self._open_link(room, address))
        room.connecting = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open_link(self, room: _Room, address: str) -> None:
        loop = asyncio.get_running_loop()
        conn: _Conn | None = None
        try:
            host, port = split_address(address)
            conn = _Conn(
                self,
                TLSSession(self._upstream_ssl, server_side=False, server_hostname=host),
                upstream=True,
            )
            conn.secured = loop.create_future()
            await asyncio.wait_for(self._dial(conn, host, port), CONNECT_TIMEOUT)
        except asyncio.CancelledError:
            if conn is not None:
                self._abort(conn)
            raise
        except Exception as exc:
            log.info("live server %s: no link Up to %s: %r", self.name, address, exc)
            if conn is not None:
                self._abort(conn)
            if room.connecting is asyncio.current_task():
                room.connecting = None
                if not room.ended:
                    room.dispatcher.upstream_failed(self.now())
                    self._wake(room)
            return
        if room.connecting is asyncio.current_task():
            room.connecting = None
        if room.ended or conn.lost:
            self._abort(conn)
            if not room.ended:
                room.dispatcher.upstream_failed(self.now())
                self._wake(room)
            return
        conn.room = room
        self._give_writer(conn)
        room.dispatcher.upstream_connected(conn, self.now())
        self._arm(conn)
        self._wake(room)

    async def _dial(self, conn: _Conn, host: str, port: int) -> None:
        """TCP, then the TLS handshake (the host name checked), then ALPN."""
        assert conn.secured is not None
        await asyncio.get_running_loop().create_connection(lambda: conn, host, port)
        await conn.secured

    # -- closing -----------------------------------------------------------------------------------

    def _write(self, conn: _Conn, data: bytes) -> None:
        """Encrypt and write ``data`` unless the connection is closing."""
        if data and not conn.closing and not conn.lost and conn.transport is not None:
            if not conn.transport.is_closing():
                conn.send(data)

    def _write_raw(self, conn: _Conn, data: bytes) -> None:
        if data and conn.transport is not None and not conn.transport.is_closing():
            conn.transport.write(data)

    def _close(
        self, conn: _Conn, *, notify: bool = True, code: int | None = None, linger: bool = False
    ) -> None:
        """Close TLS and the transport after what it holds is sent; abort if that is slow.

        A WebSocket gets its close frame first: ``code``, or the one the wire's last
        farewell (AuthFailed, Bye) calls for. With ``linger`` (an HTTP answer) only our
        side is shut: closing a socket with unread input resets it, and the reset can
        destroy the answer before the client reads it, so the client closes first."""
        if conn.closing or conn.transport is None:
            return
        conn.closing = True
        if conn.timer is not None:
            conn.timer.cancel()
            conn.timer = None
        if not conn.transport.is_closing():
            if notify:
                if conn.door is not None:
                    farewell = conn.door.close(code)
                    if farewell:
                        conn.send_plain(farewell)
                conn.transport.write(conn.tls.close_notify())
            if linger and conn.transport.can_write_eof():
                conn.transport.write_eof()
            else:
                conn.transport.close()
        if not conn.lost and self._loop is not None:
            conn.abort_handle = self._loop.call_later(CLOSE_GRACE, conn.transport.abort)

    def _abort(self, conn: _Conn) -> None:
        conn.closing = True
        if conn.transport is not None:
            conn.transport.abort()

    def _broken(self, conn: _Conn, doing: str) -> None:
        """The core raised on this connection's bytes: a bug, but only this connection pays."""
        log.exception("live server %s: closing a connection after an error %s", self.name, doing)
        if conn.door is not None:
            self._close(conn, code=CloseCode.INTERNAL_ERROR)
        else:
            self._abort(conn)
        room = conn.room
        if room is not None:
            room.dispatcher.lost(conn, self.now())
            self._wake(room)

    def _count_gone(self, room: _Room, conn: _Conn) -> None:
        stats = room.dispatcher.outbox.stats(conn)
        self._gone[1] += stats.dropped_frames
        self._gone[2] += stats.dropped_bytes

    def _lost(self, conn: _Conn) -> None:
        conn.lost = True
        conn.writer = None  # its file descriptor is closed now, and may be reused
        if conn.secured is not None and not conn.secured.done():
            conn.secured.set_exception(ConnectionError("the connection closed in the handshake"))
        for handle in (conn.timer, conn.abort_handle):
            if handle is not None:
                handle.cancel()
        conn.timer = conn.abort_handle = None
        conn.opening = None
        self._conns.discard(conn)
        self._settle(conn)
        room = conn.room
        if room is not None:
            self._count_gone(room, conn)
            room.dispatcher.lost(conn, self.now())
            self._wake(room)
        if self._all_lost is not None and not self._conns and not self._all_lost.done():
            self._all_lost.set_result(None)
