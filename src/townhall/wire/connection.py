"""One side of one live-protocol connection: bytes in, events out, bytes to send.

The h11 shape: the I/O shell feeds what it reads to ``receive_data`` (``b""``
for EOF), takes events from ``next_event`` until it gets ``NEED_DATA``, writes
what ``send`` returns, and asks ``get_timer`` when to call ``handle_timer``.
Time is always passed in as ``now`` (seconds, any monotonic clock); the
connection never reads a clock, a socket or a random source, and knows nothing
of events, rooms or tickets beyond the fields of the messages. The states and
what each may carry are the tables in states.py; docs/protocol.md draws them.

Keepalive: a side that has heard nothing for ``ping_interval`` sends a Ping,
and one that has heard nothing for ``idle_timeout`` says Bye and closes. The
peer's application must answer each Ping with a Pong (``Ping.pong``), since
only it knows the load a server reports there. Round trips: every Ping this
core sends is timed, and the Pong carrying its nonce gives one sample
(``take_round_trips``); on a server link (``Role.SERVER_LINK``) a Ping also
goes every ``link_rtt_interval`` seconds, busy or not, so a link's round trip
is measured while media flows. A Pong for any other nonce is ignored
(``pongs_unmatched``). Pings from the peer are answered at most
``ping_burst`` at once, then ``ping_rate`` a second: the excess is dropped
unanswered (``pings_dropped``), so a peer cannot make this side write a Pong
for every ten bytes it sends.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass
from typing import Final

from townhall.wire.errors import LocalProtocolError, RemoteProtocolError
from townhall.wire.frames import (
    HEADER_SIZE,
    MAX_PAYLOAD,
    Channel,
    FrameHeader,
    MediaFrame,
    parse_header,
)
from townhall.wire.messages import (
    PROTOCOL_VERSION,
    AuthFailed,
    Bye,
    ByeReason,
    EncodedMessage,
    Hello,
    Message,
    Ping,
    Pong,
    Role,
    Welcome,
    decode_message,
    encode_message,
    message_class,
)
from townhall.wire.states import OPEN_TRAFFIC, TRANSITIONS, Kind, Side, State

__all__ = ["NEED_DATA", "Connection", "ConnectionClosed", "Event", "NeedData", "Settings"]

# Round trips held until ``take_round_trips``: a shell that never asks loses the oldest.
MAX_ROUND_TRIPS: Final = 16

# Drop the consumed front of the receive buffer once it is this large, rather
# than after every frame, so many small frames in one read cost linear time.
_COMPACT_AFTER: Final = 64 * 1024


class NeedData(enum.Enum):
    """``next_event`` has no whole frame: feed more bytes (or EOF) first."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The last event of every connection; ``next_event`` repeats it from then on.

    ``by_peer`` is True when the peer said Bye or AuthFailed or hung up, False
    when this side did (including its timers).
    """

    reason: ByeReason
    message: str
    by_peer: bool


Event = Message | MediaFrame | ConnectionClosed


@dataclass(frozen=True, slots=True)
class Settings:
    """Timers (seconds) and the receive bound of one connection."""

    ping_interval: float = 15.0
    idle_timeout: float = 45.0
    handshake_timeout: float = 10.0
    # Unparsed bytes held at most; one largest frame must fit, and the shell
    # drains next_event() before it feeds more.
    max_buffer: int = 1024 * 1024
    # A timed Ping on an OPEN server link this often, however busy (None: only the
    # keepalive's, which go only over a quiet link). The first goes on entering OPEN.
    link_rtt_interval: float | None = None
    # Pings from the peer answered: up to ping_burst at once, refilled at ping_rate a
    # second; the rest are dropped unanswered. A Ping a peer sends on a link every
    # link_rtt_interval must fit, so 1 / link_rtt_interval <= ping_rate.
    ping_burst: int = 16
    ping_rate: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.ping_interval < self.idle_timeout:
            raise ValueError("need 0 < ping_interval < idle_timeout")
        if self.ping_burst < 1 or not self.ping_rate > 0:
            raise ValueError("ping_burst must be at least 1 and ping_rate positive")
        interval = self.link_rtt_interval
        if interval is not None and not interval * self.ping_rate >= 1:
            raise ValueError("link_rtt_interval must be at least 1 / ping_rate seconds")
        if self.handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be positive")
        if self.max_buffer < HEADER_SIZE + max(MAX_PAYLOAD.values()):
            raise ValueError("max_buffer must hold the largest frame")


def _open_kinds(role: Role, sender: Side) -> frozenset[Kind]:
    """Everything ``sender`` may send in OPEN that leaves the connection OPEN."""
    common = {
        kind
        for (state, side, kind), following in TRANSITIONS.items()
        if state is following is State.OPEN and side is sender
    }
    return OPEN_TRAFFIC[(role, sender)] | common


def _kind_name(kind: Kind) -> str:
    return kind.name if isinstance(kind, Channel) else kind.__name__


class Connection:
    """The client or the server end of one connection (``side``).

    The client speaks first: ``send(Hello(...))``. The server answers Hello
    with Welcome, and Auth with AuthOk or AuthFailed.
    """

    def __init__(self, side: Side, *, now: float, settings: Settings | None = None) -> None:
        self._side = side
        self._settings = settings if settings is not None else Settings()
        self._state = State.AWAIT_HELLO
        self._role: Role | None = None
        self._offered_version = 0
        self._version: int | None = None
        self._buffer = bytearray()
        self._start = 0
        self._eof = False
        self._pending: tuple[Kind, FrameHeader] | None = None  # a checked header
        self._started = now
        self._last_heard = now
        self._last_ping = now
        self._ping_nonce = 0
        self._clock = now  # the latest ``now`` given: when a frame being parsed arrived
        self._timed: tuple[int, float] | None = None  # the Ping awaiting its Pong, sent when
        self._next_probe: float | None = None  # the next timed Ping of a server link
        self._round_trips: deque[float] = deque(maxlen=MAX_ROUND_TRIPS)
        self._ping_tokens = float(self._settings.ping_burst)
        self._ping_stamp = now
        self.pings_dropped = 0
        self.pongs_unmatched = 0
        self._error: RemoteProtocolError | None = None
        self._closed: ConnectionClosed | None = None
        # What each side may send in OPEN without changing state, from the
        # tables, set on entering OPEN: the per-frame check is one set lookup.
        self._open_sends: frozenset[Kind] = frozenset()
        self._open_receives: frozenset[Kind] = frozenset()

    # -- what the shell may look at -------------------------------------------

    @property
    def side(self) -> Side:
        return self._side

    @property
    def state(self) -> State:
        return self._state

    @property
    def role(self) -> Role | None:
        """The client's role from Hello; None before Hello."""
        return self._role

    @property
    def version(self) -> int | None:
        """The protocol version agreed in Welcome; None before it."""
        return self._version

    # -- bytes in, events out -----------------------------------------------------

    def receive_data(self, data: bytes, now: float) -> None:
        """Take bytes read from the peer at time ``now``; ``b""`` means EOF.

        Bytes arriving after the connection closed or failed are dropped.
        Raises LocalProtocolError if the shell feeds more than ``max_buffer``
        unparsed bytes (it must drain ``next_event`` first) or feeds after EOF.
        """
        if self._state is State.CLOSED or self._state is State.ERROR:
            return
        if self._eof:
            raise LocalProtocolError("receive_data after EOF")
        if not data:
            self._eof = True
            return
        if len(self._buffer) - self._start + len(data) > self._settings.max_buffer:
            raise LocalProtocolError("receive buffer full: drain next_event() before feeding more")
        self._buffer += data
        self._last_heard = max(self._last_heard, now)
        self._clock = max(self._clock, now)

    def next_event(self) -> Event | NeedData:
        """The next event, NEED_DATA, or RemoteProtocolError if the peer broke the rules.

        After a RemoteProtocolError the state is ERROR, every later call raises
        it again, and the one thing left to send is ``Bye.for_error(exc)``.
        """
        if self._closed is not None:
            return self._closed
        if self._error is not None:
            raise self._error
        try:
            while True:
                event = self._parse()
                if isinstance(event, Ping) and not self._answerable():
                    continue  # over the rate: dropped unanswered
                if isinstance(event, Pong):
                    self._time_pong(event)
                return event
        except RemoteProtocolError as exc:
            self._state = State.ERROR
            self._error = exc
            self._open_sends = self._open_receives = frozenset()
            raise

    def _parse(self) -> Event | NeedData:
        if self._pending is None:
            if len(self._buffer) - self._start < HEADER_SIZE:
                return self._need_data()
            header = parse_header(self._buffer, self._start)
            kind: Kind
            if header.channel.is_media:
                kind = header.channel
            else:
                found = message_class(header.channel, header.type)
                if found is None:
                    raise RemoteProtocolError(
                        f"unknown {header.channel.name} message type {header.type}"
                    )
                kind = found
            # Refuse a message out of turn on its header, before its payload.
            self._next_state(self._side.peer, kind, RemoteProtocolError)
            self._pending = (kind, header)
        kind, header = self._pending
        end = self._start + HEADER_SIZE + header.length
        if len(self._buffer) < end:
            return self._need_data()
        with memoryview(self._buffer) as view:
            if isinstance(kind, Channel):
                event: Message | MediaFrame = MediaFrame.decode(
                    header, view[self._start : end].tobytes()
                )
            else:
                event = decode_message(kind, view[self._start + HEADER_SIZE : end].tobytes())
        self._consume(end)
        self._apply(
            self._side.peer, event, self._next_state(self._side.peer, kind, RemoteProtocolError)
        )
        return event

    def _answerable(self) -> bool:
        """Whether a Ping from the peer, arrived now, is within its rate (and use it up)."""
        settings = self._settings
        elapsed = max(0.0, self._clock - self._ping_stamp)
        self._ping_tokens = min(
            float(settings.ping_burst), self._ping_tokens + elapsed * settings.ping_rate
        )
        self._ping_stamp = self._clock
        if self._ping_tokens < 1:
            self.pings_dropped += 1
            return False
        self._ping_tokens -= 1
        return True

    def _time_pong(self, pong: Pong) -> None:
        timed = self._timed
        if timed is None or pong.nonce != timed[0]:
            self.pongs_unmatched += 1
            return
        self._timed = None
        self._round_trips.append(max(0.0, self._clock - timed[1]))

    def take_round_trips(self) -> tuple[float, ...]:
        """Round-trip times (seconds) measured since the last call, oldest first: from each
        timed Ping to the Pong with its nonce, at the ``now`` its bytes were fed with."""
        if not self._round_trips:
            return ()  # the common case, after every read: nothing to copy
        samples = tuple(self._round_trips)
        self._round_trips.clear()
        return samples

    def _need_data(self) -> Event | NeedData:
        if not self._eof:
            return NEED_DATA
        unparsed = len(self._buffer) - self._start
        message = f"EOF inside a frame, {unparsed} bytes unread" if unparsed else "EOF without Bye"
        closed = ConnectionClosed(ByeReason.CONNECTION_LOST, message, by_peer=True)
        self._close(closed)
        return closed

    def _consume(self, end: int) -> None:
        self._pending = None
        self._start = end
        if self._start == len(self._buffer):
            self._buffer.clear()
            self._start = 0
        elif self._start > _COMPACT_AFTER:
            del self._buffer[: self._start]
            self._start = 0

    # -- bytes out ----------------------------------------------------------------

    def send(self, item: Message | EncodedMessage | MediaFrame) -> bytes:
        """The bytes that carry ``item``, after checking it may be sent now.

        An ``EncodedMessage`` or a ``MediaFrame`` is not encoded again: its
        bytes are returned as they are, to be written to every listener.
        Raises LocalProtocolError, and changes nothing, if the message is not
        allowed in this state for this side and role, or is not valid.
        """
        if isinstance(item, MediaFrame):
            if item.channel not in self._open_sends:  # the hot path is one set lookup
                self._check_send(item.channel)  # raises, saying why
            return item.data
        if isinstance(item, EncodedMessage):
            if type(item.message) in self._open_sends:  # fan-out: as cheap as media
                return item.data
            message, data = item.message, item.data
        elif isinstance(item, Message):
            message, data = item, b""
        else:
            raise LocalProtocolError(f"cannot send {type(item).__name__}")
        following = self._check_send(type(message))
        if isinstance(message, Welcome):
            self._check_version(message.version, LocalProtocolError)
        if not data:
            data = encode_message(message).data
        self._apply(self._side, message, following)
        return data

    def sends_media(self, channel: Channel) -> bool:
        """Whether a frame on ``channel`` may be sent now: what ``send`` checks for media,
        as a yes or no for a fan-out that skips those not (or no longer) open for it."""
        return channel in self._open_sends

    def _check_send(self, kind: Kind) -> State:
        if self._state is State.ERROR and kind is not Bye:
            raise LocalProtocolError("the peer broke the protocol: only Bye may be sent")
        if self._state is State.CLOSED:
            raise LocalProtocolError(f"cannot send {_kind_name(kind)}: the connection is closed")
        return self._next_state(self._side, kind, LocalProtocolError)

    # -- the state machine --------------------------------------------------------

    def _next_state(
        self,
        sender: Side,
        kind: Kind,
        error: type[LocalProtocolError] | type[RemoteProtocolError] = LocalProtocolError,
    ) -> State:
        if kind in (self._open_sends if sender is self._side else self._open_receives):
            return State.OPEN
        state = self._state
        following = TRANSITIONS.get((state, sender, kind))
        if following is None:
            role = f" on a {self._role.value} connection" if self._role is not None else ""
            raise error(f"the {sender.value} may not send {_kind_name(kind)} in {state.name}{role}")
        return following

    def _check_version(
        self, version: int, error: type[LocalProtocolError] | type[RemoteProtocolError]
    ) -> None:
        if version > min(self._offered_version, PROTOCOL_VERSION):
            raise error(
                f"Welcome version {version}: Hello offered {self._offered_version}, "
                f"this side speaks up to {PROTOCOL_VERSION}"
            )

    def _apply(self, sender: Side, event: Message | MediaFrame, following: State) -> None:
        """Move to ``following`` for a message sent or received, noting what it says."""
        if following is self._state:
            return
        by_peer = sender is not self._side
        if following is State.OPEN and self._role is not None:
            self._open_sends = _open_kinds(self._role, self._side)
            self._open_receives = _open_kinds(self._role, self._side.peer)
            if self._role is Role.SERVER_LINK and self._settings.link_rtt_interval is not None:
                self._next_probe = self._clock  # at once: a link's first sample comes early
        if isinstance(event, Hello):
            self._role = event.role
            self._offered_version = event.version
        elif isinstance(event, Welcome):
            if by_peer:
                self._check_version(event.version, RemoteProtocolError)
            self._version = event.version
        elif isinstance(event, Bye):
            self._close(ConnectionClosed(event.reason, event.message, by_peer))
        elif isinstance(event, AuthFailed):
            text = f"{event.reason.value}: {event.message}" if event.message else event.reason.value
            self._close(ConnectionClosed(ByeReason.AUTH_FAILED, text, by_peer))
        self._state = following

    def _close(self, closed: ConnectionClosed) -> None:
        self._state = State.CLOSED
        self._closed = closed
        self._open_sends = self._open_receives = frozenset()
        self._pending = None
        self._buffer.clear()
        self._start = 0

    # -- time -----------------------------------------------------------------------

    def get_timer(self) -> float | None:
        """When ``handle_timer`` must next be called; None once closed."""
        if self._state is State.CLOSED or self._state is State.ERROR:
            return None
        settings = self._settings
        if self._state is not State.OPEN:
            return self._started + settings.handshake_timeout
        due = min(
            max(self._last_heard, self._last_ping) + settings.ping_interval,
            self._last_heard + settings.idle_timeout,
        )
        return due if self._next_probe is None else min(due, self._next_probe)

    def handle_timer(self, now: float) -> bytes:
        """Act on the timer at ``now``: the bytes to send (a Ping or a Bye), or b""."""
        if self._state is State.CLOSED or self._state is State.ERROR:
            return b""
        settings = self._settings
        self._clock = max(self._clock, now)
        if self._state is not State.OPEN:
            if now < self._started + settings.handshake_timeout:
                return b""
            return self.send(
                Bye(
                    reason=ByeReason.HANDSHAKE_TIMEOUT,
                    message=f"no handshake within {settings.handshake_timeout:g} s",
                )
            )
        if now >= self._last_heard + settings.idle_timeout:
            return self.send(
                Bye(
                    reason=ByeReason.IDLE_TIMEOUT,
                    message=f"nothing heard for {now - self._last_heard:g} s",
                )
            )
        probe = self._next_probe
        if probe is not None and now >= probe and settings.link_rtt_interval is not None:
            self._next_probe = now + settings.link_rtt_interval
            return self._timed_ping(now)
        if now >= max(self._last_heard, self._last_ping) + settings.ping_interval:
            return self._timed_ping(now)
        return b""

    def _timed_ping(self, now: float) -> bytes:
        """A Ping whose Pong times the round trip; it replaces one still unanswered."""
        self._last_ping = now
        self._ping_nonce += 1
        self._timed = (self._ping_nonce, now)
        return self.send(Ping(nonce=self._ping_nonce))
