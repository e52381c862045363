"""``EventRoom``: the state of one event on one live server, main or child, and its relays.

Events in, commands out (events.py): the room takes decoded messages, media
frames, lost connections, wakeups and the Controller's assignment, and
answers with what to send to whom, what to close, when to reconnect Up. It
never sees bytes on the way in nor a socket, a clock or a random source: the
time is ``handle``'s ``now`` (Unix seconds, also what tickets are checked
against) and the reconnect jitter comes from the ``jitter`` callable it is
given. One class serves every place in the tree:

- Every server authenticates the participants connected to it
  (admission.py), keeps a mirror of the event state (roster, mode, streams)
  and a copy of the chat log, and relays Down to its participants and child
  links what comes from above.
- A child sends Up what its members do (``MemberJoined``, ``LinkRequest``, chat)
  and what its own children send; the main server hands it to its ``Floor``,
  whose answer goes Down through the very path a child's parent messages take.
- Media goes from whoever may speak (checked once, at the speaker's server)
  to every link but the one it came on and every local participant but the
  sender: in a tree, every other participant gets it exactly once.
- Chat goes Up to the main server, which numbers it, and comes Down to
  everyone, sender included: one order for everybody, each message once.

docs/live.md, "Event state and the cascade", has the whole story.
"""

from __future__ import annotations

import enum
import re
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

import msgspec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.live.admission import (
    Refusal,
    check_link,
    check_participant,
    display_name,
    link_ticket,
    member_name,
)
from townhall.live.attendance import Ledger
from townhall.live.backoff import Backoff
from townhall.live.chatlog import ChatLog, Entry
from townhall.live.events import (
    AssignmentReceived,
    CloseConnection,
    Command,
    ConnectionLost,
    ConnectUpstream,
    ConnId,
    Event,
    EventEnded,
    Greeted,
    KeyFramesWanted,
    MediaReceived,
    MessageReceived,
    PassEnded,
    RequestWakeup,
    SendMediaTo,
    SendTo,
    SendToMany,
    ServerRole,
    TimerFired,
    UpstreamConnected,
    UpstreamLost,
)
from townhall.live.floor import Down, Floor, Removed, Seat, roster_chunks
from townhall.live.lateness import Lateness
from townhall.live.polls import POLL_COMMANDS, Polls, poll_for
from townhall.live.questions import QUESTION_COMMANDS, Questions, question_for
from townhall.live.stage import Stage
from townhall.ticket import Role as TicketRole
from townhall.wire import (
    PROTOCOL_VERSION,
    AttendanceChanged,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Banned,
    Bye,
    ByeReason,
    Channel,
    ChatMark,
    ChatPosted,
    Codec,
    EncodedMessage,
    Error,
    ErrorCode,
    Evict,
    Hello,
    LinkRequest,
    Load,
    LocalProtocolError,
    MediaFrame,
    Member,
    MemberJoined,
    MemberLeft,
    Message,
    Ping,
    Poll,
    PollUpdated,
    Pong,
    Question,
    QuestionUpdated,
    RecordingChanged,
    RecordingState,
    Refused,
    RemoteProtocolError,
    RequestKeyFrame,
    Resync,
    Role,
    RosterDone,
    RosterReset,
    RosterUpdate,
    RosterView,
    SendChat,
    SpeakingMode,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamOpened,
    Synced,
    UpstreamChanged,
    Welcome,
    encode_message,
)
from townhall.wire.messages import BANNED_CHUNK, FORWARDED_COMMANDS
from townhall.wire.names import NOT_IN_LABELS, SERVER_NAME_RULE, Upstream, is_server_name

# Of ``max_media_age``, what audio may have lost before it is read here (the rest: the relay).
_ARRIVAL_SHARE: Final = 0.5

__all__ = ["UPSTREAM_TRANSITIONS", "EventRoom", "RoomSettings", "Upstream", "UpstreamInput"]

_NOT_TITLE: Final = re.compile(f"[{NOT_IN_LABELS}]")
_SPEAKERS_IN_LECTURE: Final = frozenset({TicketRole.MODERATOR, TicketRole.PRESENTER})


@dataclass(frozen=True, slots=True)
class RoomSettings:
    """What one server's room needs to know; every bound in one place."""

    server_name: str
    center_public_key: Ed25519PublicKey
    capacity: int = 0  # participants on this server; 0: no set limit
    chat_log_size: int = 10_000  # entries kept for history and replay
    history_on_join: int = 100  # entries a joining participant is sent
    replay_budget: int = 2 * 1024 * 1024  # bytes of chat at most in one join or resync
    max_outgoing_chat: int = 1_000  # chat waiting for the main server's echo (child)
    request_rate: float = 10.0  # chat and commands per second per participant
    request_burst: int = 40
    ticket_leeway: int = 60  # seconds of clock difference tolerated on tickets
    backoff: Backoff = field(default_factory=Backoff)
    # The main server numbers its chat from chat_seq_base + 1. A shell gives a
    # base above any number an earlier run of this event's main server used
    # (the asyncio shell: the Unix time in microseconds), so that children
    # holding the old numbers take a restarted main server's chat as new.
    chat_seq_base: int = 0
    # A credential issued less than this many seconds before an assignment
    # arrived, or later, may be missing from its list (the Controller read the
    # list before the Center made it): it is let in, and the next assignment
    # lists it or revokes it. Covers the Controller's pass and clock skew.
    list_lag: float = 30.0
    # At most one RequestKeyFrame per stream goes on toward its owner in this many
    # seconds, however many viewers (and servers dropping frames) ask: one key
    # frame answers them all, and a key frame costs the owner's uplink ten deltas.
    keyframe_interval: float = 0.3
    # The age media may reach on this server (``[live] max_media_age_ms``). Audio read
    # more than half of it after its stream's best case is dropped at the door instead
    # of relayed late (live/lateness.py): the other half is the relay's, for the pass
    # that fans it out and the write (a starved server's pass is long).
    max_media_age: float = 0.3
    # Past this many members, participants see the stage and a count, not everyone
    # (``[live] roster_limit``, live/stage.py); moderators always see everyone.
    roster_limit: int = 250

    def __post_init__(self) -> None:
        if not is_server_name(self.server_name):
            raise ValueError(f"a server name is {SERVER_NAME_RULE}")
        if self.capacity < 0 or self.chat_log_size < 1 or self.history_on_join < 0:
            raise ValueError("capacity, chat_log_size and history_on_join out of range")
        if self.roster_limit < 1:
            raise ValueError("roster_limit must be at least 1")
        if self.request_rate <= 0 or self.request_burst < 1 or self.max_outgoing_chat < 1:
            raise ValueError("request_rate, request_burst and max_outgoing_chat must be positive")
        if not 0 <= self.chat_seq_base < 2**63:
            raise ValueError("chat_seq_base out of range")


class UpstreamInput(enum.Enum):
    """What moves a child's link Up (``townhall.wire.names.Upstream``) on."""

    ASSIGNED = "assigned"  # a parent was assigned, or changed
    TRANSPORT_UP = "transport-up"
    AUTH_OK = "auth-ok"
    SYNCED = "synced"
    LOST = "lost"  # the attempt failed, or the link closed, or it broke the protocol
    WAKEUP = "wakeup"


_U, _I = Upstream, UpstreamInput
UPSTREAM_TRANSITIONS: Final[Mapping[tuple[Upstream, UpstreamInput], Upstream]] = MappingProxyType(
    {
        **{(state, _I.ASSIGNED): _U.CONNECTING for state in Upstream},
        (_U.CONNECTING, _I.TRANSPORT_UP): _U.HANDSHAKE,
        (_U.HANDSHAKE, _I.AUTH_OK): _U.SYNCING,
        (_U.SYNCING, _I.SYNCED): _U.UP,
        (_U.CONNECTING, _I.LOST): _U.WAITING,
        (_U.HANDSHAKE, _I.LOST): _U.WAITING,
        (_U.SYNCING, _I.LOST): _U.WAITING,
        (_U.UP, _I.LOST): _U.WAITING,
        (_U.WAITING, _I.WAKEUP): _U.CONNECTING,
    }
)
"""Upstream state, input -> next state; an input not listed for a state changes nothing."""

_LINK_OPEN: Final = frozenset({Upstream.SYNCING, Upstream.UP})


@dataclass(slots=True)
class _Peer:
    """A connection to this server: a participant, or a child server's link."""

    conn: ConnId
    role: Role
    version: int = PROTOCOL_VERSION  # the highest its Hello offered
    open: bool = False
    name: str = ""  # the member's name, or the child server's
    display_name: str = ""  # what people see of the member ("": its name)
    # participants
    credential_id: str = ""
    ticket_role: TicketRole = TicketRole.PARTICIPANT
    tokens: float = 0.0
    stamp: float = 0.0
    # child links
    synced: bool = False  # Resync answered: live traffic flows
    last_seq: int | None = None  # the last chat entry sent on this link
    names: set[str] = field(default_factory=set)  # members reached through it


@dataclass(frozen=True, slots=True)
class _Route:
    """Where a member is, seen from here: a local connection or a child link."""

    conn: ConnId
    local: bool
    joined: MemberJoined


class EventRoom:
    """One event on one live server; ``handle(event, now) -> commands``."""

    def __init__(self, settings: RoomSettings, *, jitter: Callable[[], float]) -> None:
        self._settings = settings
        self._jitter = jitter
        self._assignment: AssignmentReceived | None = None
        self._roster_pending: dict[str, Member | None] = {}  # None: left; sent on PassEnded
        self._listed_before = 0.0  # see RoomSettings.list_lag
        self._ended = False
        self._event_id = ""
        self._title = ""
        self._floor: Floor | None = None  # the main server's authority
        self._peers: dict[ConnId, _Peer] = {}
        self._links: dict[ConnId, _Peer] = {}  # open child links, a subset of _peers
        self._links_cache: tuple[ConnId, ...] | None = None  # the synced ones
        self._locals: dict[str, ConnId] = {}  # open participants here, by name
        self._ledger = Ledger()  # their visits, for the attendance report
        self._audience_cache: tuple[ConnId, ...] | None = None
        self._routes: dict[str, _Route] = {}  # every member at or below this server
        self._banned: set[str] = set()
        # the mirror of the event state, as it came Down
        self._roster: dict[str, Member] = {}
        self._roster_before: dict[str, Member] | None = None  # during a RosterReset
        self._stage = Stage(settings.roster_limit)
        self._count_due: float | None = None  # a wakeup asked for to send the count
        # (the audience it was cut from, its moderators, the others): see _roster_viewers
        self._viewers_cache: tuple[tuple[ConnId, ...], ...] | None = None
        self._mode = SpeakingMode.MODERATED
        self._recording = RecordingState.OFF
        self._streams: dict[int, StreamInfo] = {}
        self._log = ChatLog(settings.chat_log_size)
        # polls and questions: the main server's authority, and every server's
        # mirror (whole: counts and askers), sent to participants once a pass
        self._poll_authority: Polls | None = None
        self._question_authority: Questions | None = None
        self._polls: dict[int, Poll] = {}
        self._questions: dict[int, Question] = {}
        self._polls_pending: set[int] = set()
        self._questions_pending: set[int] = set()
        self._record_version = 0  # moves with every poll or question update
        # the link Up (a child)
        self._up_state = Upstream.NONE
        self._up_conn: ConnId | None = None
        self._parent_name = ""  # the name in the parent's Welcome, on the link Up now
        self._failures = 0
        self._retry_at = 0.0
        self._expect: int | None = None  # the log number of the next ChatPosted from Up
        self._outgoing: deque[ChatPosted] = deque()  # sent Up, not yet echoed Down
        self._told_down = False  # participants here were told the link Up is down
        self._media_refused = 0
        self._media_late = 0
        self._lateness = Lateness()
        self._keyframe_asked: dict[int, float] = {}  # stream id -> when last passed on
        self._now = 0.0
        self._wall = 0.0
        self._wall_offset = 0.0  # Unix time minus the timers' clock, as last given
        self._out: list[Command] = []

    # -- what the shell, the tests and the metrics may read ------------------------------

    @property
    def role(self) -> ServerRole | None:
        return None if self._assignment is None else self._assignment.role

    @property
    def floor(self) -> Floor | None:
        """The authoritative state; only on the main server."""
        return self._floor

    @property
    def roster(self) -> Mapping[str, Member]:
        """The roster as this server knows it (on a child: as it last came Down)."""
        return MappingProxyType(self._roster)

    @property
    def mode(self) -> SpeakingMode:
        return self._mode

    @property
    def streams(self) -> Mapping[int, StreamInfo]:
        return MappingProxyType(self._streams)

    @property
    def polls(self) -> Mapping[int, Poll]:
        """Every poll with its results, as this server knows them (a child: as they came Down)."""
        return MappingProxyType(self._polls)

    @property
    def questions(self) -> Mapping[int, Question]:
        """Every question with its votes and asker, as this server knows them."""
        return MappingProxyType(self._questions)

    @property
    def record_version(self) -> int:
        """A number that moves whenever a poll or a question changes here: report them again."""
        return self._record_version

    @property
    def chat_log(self) -> tuple[Entry, ...]:
        return tuple(self._log)

    @property
    def local_members(self) -> frozenset[str]:
        return frozenset(self._locals)

    @property
    def upstream(self) -> Upstream:
        return self._up_state

    @property
    def children(self) -> tuple[str, ...]:
        """The child servers linked here and synced (their Resync answered), by name."""
        return tuple(sorted(peer.name for peer in self._links.values() if peer.synced))

    def link_peer(self, conn: ConnId) -> str | None:
        """The server at the other end of ``conn`` if it is a server link past its Auth: a
        child by the name its link ticket proved, the parent by its Welcome's (the
        parent's certificate was checked); None for anything else."""
        if self._up_conn is not None and conn == self._up_conn:
            return self._parent_name if self._up_state in _LINK_OPEN else None
        peer = self._links.get(conn)
        return peer.name if peer is not None else None

    @property
    def told_down(self) -> bool:
        """Participants here were told (``UpstreamChanged``) the main server is out of reach."""
        return self._told_down

    @property
    def outgoing_chat(self) -> int:
        """Chat sent Up (or waiting to be) whose numbered echo has not come Down yet."""
        return len(self._outgoing)

    @property
    def removed(self) -> tuple[Removed, ...]:
        """The moderators' Removes (main server only), reported Up to the Controller."""
        return self._floor.removed if self._floor is not None else ()

    @property
    def attendance(self) -> Ledger:
        """Who was connected here and when (attendance.py), reported to the Controller."""
        return self._ledger

    @property
    def media_refused(self) -> int:
        """Media frames dropped here because their sender could not speak."""
        return self._media_refused

    @property
    def media_late(self) -> int:
        """Audio frames dropped here because they arrived too late to be worth relaying."""
        return self._media_late

    def load(self) -> Load:
        return Load(participants=len(self._locals), capacity=self._settings.capacity)

    # -- events in, commands out --------------------------------------------------------

    def handle(self, event: Event, now: float, wall: float | None = None) -> list[Command]:
        """Apply one event at time ``now``; the commands to carry out, in order.

        ``now`` is the clock of timers (monotonic in the asyncio shell: wakeups,
        rates, backoff); ``wall`` the Unix time at that moment, what tickets and
        joins are dated by. Without ``wall`` the last difference given holds
        (none given: the two clocks are one, as in the tests' router).
        """
        self._now = now
        if wall is not None:
            self._wall_offset = wall - now
        self._wall = now + self._wall_offset
        out: list[Command] = []
        self._out = out
        match event:
            case MediaReceived(conn=conn, frame=frame):
                self._on_media(conn, frame)
            case MessageReceived(conn=conn, message=message):
                self._on_message(conn, message)
            case Greeted(conn=conn, hello=hello):
                if conn not in self._peers:
                    self._peers[conn] = _Peer(conn, hello.role, hello.version)
            case ConnectionLost(conn=conn):
                self._on_lost(conn)
            case AssignmentReceived():
                self._on_assignment(event)
            case UpstreamConnected(conn=conn):
                self._on_upstream_connected(conn)
            case UpstreamLost():
                if self._up_state is Upstream.CONNECTING:
                    self._upstream_lost()
            case TimerFired():
                self._on_timer()
            case PassEnded():
                self._flush_roster()
                self._flush_polls()
            case EventEnded():
                self._on_ended()
            case KeyFramesWanted(stream_ids=stream_ids):
                for stream_id in stream_ids:
                    self._want_keyframe(stream_id, from_up=False)
            case _:
                raise LocalProtocolError(f"not a room event: {event!r}")
        self._out = []
        return out

    # -- output helpers -------------------------------------------------------------------

    def _send(self, conn: ConnId, message: Message) -> None:
        self._out.append(SendTo(conn, encode_message(message)))

    def _send_many(self, conns: tuple[ConnId, ...], message: Message) -> None:
        if conns:
            self._out.append(SendToMany(conns, encode_message(message)))

    def _audience(self) -> tuple[ConnId, ...]:
        if self._audience_cache is None:
            self._audience_cache = tuple(self._locals.values())
        return self._audience_cache

    def _synced_links(self) -> tuple[ConnId, ...]:
        if self._links_cache is None:
            self._links_cache = tuple(c for c, peer in self._links.items() if peer.synced)
        return self._links_cache

    def _everyone_below(self) -> tuple[ConnId, ...]:
        return self._audience() + self._synced_links()

    def _close(self, conn: ConnId, reason: ByeReason, message: str) -> None:
        """Say Bye, close, and forget ``conn``: its members leave (the caller moved any first)."""
        self._out.append(SendTo(conn, encode_message(Bye(reason=reason, message=message[:1024]))))
        self._out.append(CloseConnection(conn, f"{reason.value}: {message}"))
        peer = self._peers.pop(conn, None)
        if peer is not None:
            self._forget(peer)

    def _refuse_auth(self, conn: ConnId, refusal: Refusal) -> None:
        self._send(conn, AuthFailed(reason=refusal.reason, message=refusal.message[:1024]))
        self._out.append(CloseConnection(conn, f"auth failed: {refusal.reason.value}"))
        self._peers.pop(conn, None)

    # -- connections --------------------------------------------------------------------

    def _on_message(self, conn: ConnId, message: Message) -> None:
        if self._up_conn is not None and conn == self._up_conn:
            self._on_upstream_message(message)
            return
        peer = self._peers.get(conn)
        if peer is None:
            if isinstance(message, Hello):
                self._peers[conn] = _Peer(conn, message.role, message.version)
                version = min(message.version, PROTOCOL_VERSION)
                self._send(conn, Welcome(version=version, server=self._settings.server_name))
            return  # a connection the room closed: what it still says does not count
        match message:
            case Ping():
                self._send(conn, message.pong(self.load()))
            case Pong() | Error() | Bye():
                pass  # a Bye is followed by ConnectionLost
            case Auth(ticket=ticket) if not peer.open:
                self._authenticate(peer, ticket)
            case _ if not peer.open:
                self._close(
                    conn, ByeReason.PROTOCOL_ERROR, f"{type(message).__name__} before AuthOk"
                )
            case _ if peer.role is Role.PARTICIPANT:
                self._from_participant(peer, message)
            case _ if peer.role is Role.SERVER_LINK:
                try:
                    self._from_child(peer, message)
                except RemoteProtocolError as exc:
                    self._close(conn, ByeReason.PROTOCOL_ERROR, str(exc))
            case _:
                self._close(
                    conn, ByeReason.PROTOCOL_ERROR, f"{type(message).__name__} not expected"
                )

    def _on_lost(self, conn: ConnId) -> None:
        if self._up_conn is not None and conn == self._up_conn:
            self._upstream_lost()
            return
        peer = self._peers.pop(conn, None)
        if peer is not None:
            self._forget(peer)

    def _forget(self, peer: _Peer) -> None:
        """``peer`` is gone: the members it held leave, unless they are already elsewhere."""
        if not peer.open:
            return
        if peer.role is Role.PARTICIPANT:
            if self._locals.get(peer.name) == peer.conn:
                del self._locals[peer.name]
                self._ledger.left(peer.name, self._wall)
                self._audience_cache = None
            names = [peer.name]
        else:
            self._links.pop(peer.conn, None)
            self._links_cache = None
            names = sorted(peer.names)
        for name in names:
            route = self._routes.get(name)
            if route is not None and route.conn == peer.conn:
                del self._routes[name]
                self._gone(name)
                self._up_leave(name)

    def _gone(self, name: str) -> None:
        """``name`` no longer goes through here: its chat still waiting for an echo is dropped.

        Sent before the member left, it comes back numbered like any other; not
        sent yet (the link Up was down), the main server would refuse it anyway.
        """
        if any(posted.sender == name for posted in self._outgoing):
            self._outgoing = deque(p for p in self._outgoing if p.sender != name)

    # -- admission ----------------------------------------------------------------------

    def _authenticate(self, peer: _Peer, ticket: bytes) -> None:
        assignment = self._assignment
        if assignment is None or self._ended:
            self._refuse_auth(peer.conn, Refusal(AuthFailure.EVENT_NOT_LIVE, "no event here now"))
        elif peer.role is Role.PARTICIPANT:
            self._admit_participant(peer, ticket, assignment)
        elif peer.role is Role.SERVER_LINK:
            found = check_link(ticket, assignment.children)
            if isinstance(found, Refusal):
                self._refuse_auth(peer.conn, found)
                return
            for other in list(self._links.values()):
                if other.name == found:
                    self._close(other.conn, ByeReason.REPLACED, "the same server connected again")
            peer.open, peer.name = True, found
            self._links[peer.conn] = peer
            self._send(peer.conn, AuthOk(name=found, event=self._event_id))
        else:
            refusal = Refusal(AuthFailure.NOT_ALLOWED, "a live server takes no controller link")
            self._refuse_auth(peer.conn, refusal)

    def _admit_participant(
        self, peer: _Peer, ticket: bytes, assignment: AssignmentReceived
    ) -> None:
        settings = self._settings
        checked = check_participant(
            ticket,
            center_public_key=settings.center_public_key,
            event_id=assignment.event_id,
            event_keys=assignment.event_keys,
            credentials=assignment.credentials,
            revoked=assignment.revoked,
            now=self._wall,
            leeway=settings.ticket_leeway,
            listed_before=self._listed_before,
        )
        if isinstance(checked, Refusal):
            self._refuse_auth(peer.conn, checked)
            return
        if checked.credential_id in self._banned:
            self._refuse_auth(
                peer.conn, Refusal(AuthFailure.NOT_ALLOWED, "removed from this event")
            )
            return
        name = member_name(checked)
        if (
            settings.capacity
            and len(self._locals) >= settings.capacity
            and name not in self._locals
        ):
            self._refuse_auth(peer.conn, Refusal(AuthFailure.SERVER_FULL, "try another server"))
            return
        peer.open, peer.name = True, name
        peer.display_name = display_name(checked)
        peer.credential_id, peer.ticket_role = checked.credential_id, checked.role
        peer.tokens, peer.stamp = float(settings.request_burst), self._now
        moderator = checked.role is TicketRole.MODERATOR
        self._send(
            peer.conn,
            AuthOk(
                name=name,
                event=self._event_id,
                moderator=moderator,
                display_name=peer.display_name,
            ),
        )
        self._send_state(peer.conn)
        self._send_polls(peer.conn, whole=moderator)
        if self._told_down:
            self._send(peer.conn, UpstreamChanged(reachable=False))
        for entry in self._log.recent(
            {name}, count=settings.history_on_join, budget=settings.replay_budget
        ):
            self._out.append(SendTo(peer.conn, entry.encoded))
        joined = MemberJoined(
            name=name,
            credential_id=checked.credential_id,
            role=checked.role.value,
            server=settings.server_name,
            joined_at=self._wall,
            display_name=peer.display_name,
        )
        self._join(joined, peer.conn, local=True)

    def _join(self, joined: MemberJoined, conn: ConnId, *, local: bool) -> None:
        """A member joined here or below: route it, replacing an older connection of the name.

        The newest join of a name wins wherever the two meet: one live
        connection per member (and so per credential) in the whole tree; a
        child back from an outage repeats its old joins, and they lose to any
        made meanwhile. (At the very same time, the one arriving wins.)
        """
        name = joined.name
        route = self._routes.get(name)
        if route is not None and route.conn != conn:
            if route.joined.joined_at > joined.joined_at:
                self._evict(_Route(conn, local, joined), ByeReason.REPLACED, "connected elsewhere")
                return
            del self._routes[name]
            self._evict(route, ByeReason.REPLACED, "connected again elsewhere")
        self._routes[name] = _Route(conn, local, joined)
        if local:
            self._locals[name] = conn
            self._ledger.joined(name, joined.credential_id, self._wall)
            self._audience_cache = None
        else:
            self._peers[conn].names.add(name)
        self._up_join(joined)

    def _evict(self, route: _Route, reason: ByeReason, message: str) -> None:
        """Close the member at ``route`` (here, or through a child link); no MemberLeft Up."""
        name = route.joined.name
        if route.local:
            if self._locals.get(name) == route.conn:
                del self._locals[name]
                self._ledger.left(name, self._wall)
                self._audience_cache = None
            if route.conn in self._peers:
                self._close(route.conn, reason, message)
            return
        link = self._peers.get(route.conn)
        if link is not None and link.open:
            link.names.discard(name)
            self._send(route.conn, Evict(name=name, reason=reason, message=message))

    # -- participants ---------------------------------------------------------------------

    def _from_participant(self, peer: _Peer, message: Message) -> None:
        settings = self._settings
        elapsed = max(0.0, self._now - peer.stamp)
        peer.tokens = min(
            float(settings.request_burst), peer.tokens + elapsed * settings.request_rate
        )
        peer.stamp = self._now
        if peer.tokens < 1:
            self._send(peer.conn, Error(code=ErrorCode.RATE_LIMITED, message="too many requests"))
            return
        peer.tokens -= 1
        if isinstance(message, SendChat):
            if message.to is not None and message.to not in self._roster:
                self._send(
                    peer.conn,
                    Error(code=ErrorCode.UNKNOWN_MEMBER, message=f"{message.to} is not here"),
                )
                return
            posted = ChatPosted(
                sender=peer.name,
                text=message.text,
                to=message.to,
                seq=message.seq,
                sender_display_name=peer.display_name,
            )
            self._up_chat(posted)
        elif type(message) in FORWARDED_COMMANDS:
            self._up_request(peer.name, message)
        elif isinstance(message, RequestKeyFrame):
            if not self._want_keyframe(message.stream_id, from_up=False):
                message_text = f"no video stream {message.stream_id}"
                self._send(peer.conn, Error(code=ErrorCode.UNKNOWN_STREAM, message=message_text))
        else:  # wire lets nothing else through; a shell without it might
            self._close(peer.conn, ByeReason.PROTOCOL_ERROR, f"{type(message).__name__}?")

    def _send_state(self, conn: ConnId, *, link: bool = False) -> None:
        self._send(conn, self._snapshot())
        if not link and self._stage.narrow and not self._sees_everyone(conn):
            self._send_roster((conn,))
        else:
            for update in roster_chunks(self._roster.values()):
                self._send(conn, update)
        # A child always learns the state (it may hold an old one); a participant
        # hears of recording only when there is some.
        if link or self._recording is not RecordingState.OFF:
            self._send(conn, RecordingChanged(state=self._recording))

    def _snapshot(self) -> StateSnapshot:
        return StateSnapshot(
            event=self._event_id,
            title=self._title,
            mode=self._mode,
            attendance=len(self._roster),
            streams=tuple(self._streams.values()),
        )

    def _may_speak(self, peer: _Peer) -> bool:
        """The rule of Floor.can_speak, from the mirror and the credential held here."""
        member = self._roster.get(peer.name)
        if member is None or member.muted:
            return False
        if member.floor or self._mode is SpeakingMode.OPEN:
            return True
        return self._mode is SpeakingMode.LECTURE and peer.ticket_role in _SPEAKERS_IN_LECTURE

    # -- media ------------------------------------------------------------------------------

    def _on_media(self, conn: ConnId, frame: MediaFrame) -> None:
        up = self._up_conn if self._up_state in _LINK_OPEN else None
        if up is not None and conn == up:
            if not self._arrived_late(frame):
                self._relay(self._everyone_below(), frame)
            return
        peer = self._peers.get(conn)
        if peer is None or not peer.open:
            return
        if peer.role is Role.PARTICIPANT:
            info = self._streams.get(frame.stream_id)
            if (
                info is None
                or info.owner != peer.name
                or info.codec.channel is not frame.channel
                or not self._may_speak(peer)
            ):
                self._media_refused += 1
                return
        elif not peer.synced:
            return
        if not self._arrived_late(frame):
            targets = self._everyone_below()
            self._relay(targets if up is None else (*targets, up), frame, but=conn)

    def _arrived_late(self, frame: MediaFrame) -> bool:
        """Audio too far behind its stream's best case is dropped here, for everyone and
        counted: relayed, it would only make each listener late. Video is never dropped
        here (a lost frame spoils the pictures after it until a key frame)."""
        if frame.channel is not Channel.AUDIO:
            return False
        late = self._lateness.late_by(frame.stream_id, frame.timestamp_us, self._now)
        if late <= self._settings.max_media_age * _ARRIVAL_SHARE:
            return False
        self._media_late += 1
        return True

    def _relay(
        self, targets: tuple[ConnId, ...], frame: MediaFrame, *, but: ConnId | None = None
    ) -> None:
        if targets:
            self._out.append(SendMediaTo(targets, frame, but))

    def _want_keyframe(self, stream_id: int, *, from_up: bool) -> bool:
        """Pass a key frame request on toward the stream's owner; False: no such video stream.

        Down the owner's branch if it is here or below (to the owner itself if
        it is connected here), else Up. A request that came from Up never goes
        back Up. At most one per stream per ``keyframe_interval``: the rest are
        answered by the same key frame.
        """
        info = self._streams.get(stream_id)
        if info is None or info.codec is not Codec.VP8:
            return False
        last = self._keyframe_asked.get(stream_id)
        if last is not None and 0 <= self._now - last < self._settings.keyframe_interval:
            return True
        route = self._routes.get(info.owner)
        if route is not None:
            target = route.conn
        elif not from_up and self._up_conn is not None and self._up_state in _LINK_OPEN:
            target = self._up_conn
        else:
            return True  # the owner is out of reach now: its next periodic key frame will do
        self._keyframe_asked[stream_id] = self._now
        self._send(target, RequestKeyFrame(stream_id=stream_id))
        return True

    # -- Up: toward the main server ---------------------------------------------------------

    def _up_join(self, joined: MemberJoined) -> None:
        if self._floor is not None:
            seat = Seat(
                joined.name,
                joined.credential_id,
                TicketRole(joined.role),
                joined.server,
                joined.joined_at,
                display_name=joined.display_name,
            )
            self._down(self._floor.join(seat))
        elif self._up_conn is not None and self._up_state in _LINK_OPEN:
            self._send(self._up_conn, joined)
        # else: every member is announced again once the link is back

    def _up_leave(self, name: str) -> None:
        if self._floor is not None:
            self._down(self._floor.leave(name))
        elif self._up_conn is not None and self._up_state in _LINK_OPEN:
            self._send(self._up_conn, MemberLeft(name=name))

    def _up_request(self, name: str, command: Message) -> None:
        if self._floor is not None:
            self._down(self._decide(self._floor, name, command))
        elif self._up_conn is not None and self._up_state in _LINK_OPEN:
            self._send(self._up_conn, LinkRequest.of(name, command))
        else:
            self._refuse_member(name, ErrorCode.UNAVAILABLE, "the main server is out of reach")

    def _decide(self, floor: Floor, name: str, command: Message) -> list[Down]:
        """The main server's answer to a member's command: the floor's, or the polls' or Q&A's."""
        polls, questions = self._poll_authority, self._question_authority
        if isinstance(command, POLL_COMMANDS + QUESTION_COMMANDS):
            seat = floor.seats.get(name)
            if seat is None or polls is None or questions is None:
                return []  # stale: the member left (or was removed) while it travelled
            authority = polls if isinstance(command, POLL_COMMANDS) else questions
            return authority.request(name, command, moderator=seat.moderator)
        return floor.request(name, command)

    def _up_chat(self, posted: ChatPosted) -> None:
        floor = self._floor
        if floor is not None:
            seat = floor.seats.get(posted.sender)
            if seat is None:
                return  # the sender left while the message travelled
            if posted.sender_display_name != seat.display_name:
                # The roster's display name, also for a child too old to send one.
                posted = msgspec.structs.replace(posted, sender_display_name=seat.display_name)
            self._down_chat(self._log.last_seq + 1, posted, encode_message(posted))
            if posted.to is not None and posted.to not in floor.seats:
                # Left while it travelled. Logged all the same: the echo is how the
                # sender's server knows it arrived, and the recipient sees it on return.
                self._refuse_member(posted.sender, ErrorCode.UNKNOWN_MEMBER, f"{posted.to} left")
            return
        if len(self._outgoing) >= self._settings.max_outgoing_chat:
            self._refuse_member(posted.sender, ErrorCode.UNAVAILABLE, "chat is held up; try later")
            return
        self._outgoing.append(posted)
        if self._up_conn is not None and self._up_state is Upstream.UP:
            self._send(self._up_conn, posted)
        # SYNCING or down: sent after Synced, once the replay shows what the main already has

    # -- Down: from the main server's Floor or from the parent --------------------------------

    def _down(self, items: Iterable[Down]) -> None:
        for item in items:
            match item:
                case RosterUpdate():
                    roster, stage = self._roster, self._stage
                    for name in item.left:
                        roster.pop(name, None)
                    stage.remove(item.left)
                    owners = stage.owners(self._streams.values())
                    for member in item.changed:
                        roster[member.name] = member
                        stage.place(member, owners)
                    # Links get it now, in order with RosterReset and RosterDone;
                    # participants once per pass (PassEnded), merged by name.
                    self._send_many(self._synced_links(), item)
                    self._hold_roster(item.changed, item.left)
                case StateSnapshot():
                    self._mode, self._title = item.mode, item.title
                    owned_before = Stage.owners(self._streams.values())
                    self._streams = {info.stream_id: info for info in item.streams}
                    self._restage(owned_before | Stage.owners(item.streams))
                    for stream_id in [s for s in self._keyframe_asked if s not in self._streams]:
                        del self._keyframe_asked[stream_id]
                    self._send_many(self._everyone_below(), item)
                case RecordingChanged(state=state):
                    self._recording = state
                    self._send_many(self._everyone_below(), item)
                case StreamOpened(stream=info):
                    self._streams[info.stream_id] = info
                    self._send_many(self._everyone_below(), item)
                    self._restage((info.owner,))
                case StreamClosed(stream_id=stream_id):
                    closed = self._streams.pop(stream_id, None)
                    if closed is not None:
                        self._restage((closed.owner,))
                    self._lateness.forget(stream_id)
                    self._keyframe_asked.pop(stream_id, None)
                    self._send_many(self._everyone_below(), item)
                case PollUpdated(poll=poll):
                    self._polls[poll.poll_id] = poll
                    self._polls_pending.add(poll.poll_id)
                    self._record_version += 1
                case QuestionUpdated(question=question):
                    self._questions[question.question_id] = question
                    self._questions_pending.add(question.question_id)
                    self._record_version += 1
                case Evict(name=name):
                    route = self._routes.pop(name, None)
                    if route is not None:
                        self._gone(name)
                        self._evict(route, item.reason, item.message)
                case Refused(name=name, code=code, message=message):
                    self._refuse_member(name, code, message)
                case Banned(credential_ids=ids):
                    self._banned.update(ids)
                    self._down_links(item)
                case Bye(reason=ByeReason.EVENT_ENDED):
                    self._on_ended()  # a moderator's EndEvent (floor.py): everyone goes
                case RosterReset():
                    self._roster_before, self._roster = self._roster, {}
                    self._stage.clear()
                    self._down_links(item)
                case RosterDone():
                    before, self._roster_before = self._roster_before or {}, None
                    gone = [name for name in before if name not in self._roster]
                    self._stage.remove(gone)
                    self._hold_roster((), gone)
                    self._down_links(item)
                case _:
                    raise RemoteProtocolError(f"{type(item).__name__} does not come Down")

    def _hold_roster(self, changed: Iterable[Member], left: Iterable[str]) -> None:
        if not self._locals:
            return  # a joining participant gets the whole roster anyway
        pending = self._roster_pending
        for name in left:
            pending[name] = None
        for member in changed:
            pending[member.name] = member

    def _restage(self, owners: Iterable[str]) -> None:
        """Streams opened or closed: their owners go on stage or off it."""
        stage = self._stage
        now_owning = stage.owners(self._streams.values())
        for name in owners:
            member = self._roster.get(name)
            if member is not None:
                stage.place(member, now_owning)
                if stage.narrow:
                    self._hold_roster((member,), ())

    def _roster_viewers(self) -> tuple[tuple[ConnId, ...], tuple[ConnId, ...]]:
        """The participants here sent every roster change, and those shown the stage."""
        audience = self._audience()
        if not self._stage.narrow:
            return audience, ()
        cached = self._viewers_cache
        if cached is None or cached[0] is not audience:
            everyone = tuple(c for c in audience if self._sees_everyone(c))
            stage = tuple(c for c in audience if not self._sees_everyone(c))
            cached = self._viewers_cache = (audience, everyone, stage)
        return cached[1], cached[2]

    def _flush_roster(self) -> None:
        """Send participants the roster changes held this pass, the latest per member: to
        those who see everyone all of them, to those shown the stage what moved on it."""
        switched = self._settle_view()
        pending = self._roster_pending
        if pending:
            changed = [member for member in pending.values() if member is not None]
            left = [name for name, member in pending.items() if member is None]
            everyone, staged = self._roster_viewers()
            for update in roster_chunks(changed, left):
                self._send_many(everyone, update)
            if staged and not switched:  # a switch sent them the stage as it is now
                self._flush_stage(pending, staged)
            pending.clear()
        self._send_count()

    def _flush_stage(
        self, pending: Mapping[str, Member | None], viewers: tuple[ConnId, ...]
    ) -> None:
        on, off = self._stage.changes(pending, self._roster)
        for update in roster_chunks(on, off):
            self._send_many(viewers, update)
        for name, member in pending.items():  # a participant always sees itself
            conn = self._locals.get(name)
            if member is not None and name not in self._stage and conn is not None:
                if not self._sees_everyone(conn):
                    self._send(conn, RosterUpdate(changed=(member,)))

    def _settle_view(self) -> bool:
        """Switch participants between everyone and the stage when the event crossed the
        roster limit; True when it did (they were sent the roster anew)."""
        members = len(self._roster)
        if not self._stage.settle(members):
            return False
        self._viewers_cache = None
        participants = tuple(c for c in self._audience() if not self._sees_everyone(c))
        self._send_roster(participants)
        self._stage.told(members, self._now)
        return True

    def _send_roster(self, conns: tuple[ConnId, ...]) -> None:
        """The roster from scratch to participants: a RosterView, then everyone or the stage
        and each one itself."""
        if not conns:
            return
        narrow = self._stage.narrow
        self._send_many(conns, RosterView(full=not narrow, members=len(self._roster)))
        members = self._stage.lineup(self._roster) if narrow else self._roster.values()
        for update in roster_chunks(members):
            self._send_many(conns, update)
        if narrow:
            for conn in conns:
                name = self._peers[conn].name
                member = self._roster.get(name)
                if member is not None and name not in self._stage:
                    self._send(conn, RosterUpdate(changed=(member,)))

    def _send_count(self) -> None:
        """The number of members, to those shown the stage: when it moved, at most about
        once a second (a wakeup sends one held back)."""
        members = len(self._roster)
        due = self._stage.count_due(members, self._now)
        if due is None:
            return
        if due > self._now:
            if self._count_due is None:
                self._count_due = due
                self._out.append(RequestWakeup(due))
            return
        _, staged = self._roster_viewers()
        self._send_many(staged, AttendanceChanged(members=members))
        self._stage.told(members, self._now)

    def _flush_polls(self) -> None:
        """Send the polls and questions that moved this pass, each once: whole along the links,
        cut per participant (poll_for, question_for), each variant encoded once."""
        if not (self._polls_pending or self._questions_pending):
            return
        links = self._synced_links()
        moderators = tuple(c for c in self._audience() if self._is_moderator(c))
        others = tuple(c for c in self._audience() if not self._is_moderator(c))
        for poll_id in sorted(self._polls_pending):
            poll = self._polls[poll_id]
            self._send_many(links + moderators, PollUpdated(poll=poll))
            shown = poll_for(poll, moderator=False)
            if shown is not None:
                self._send_many(others, PollUpdated(poll=shown))
        for question_id in sorted(self._questions_pending):
            question = self._questions[question_id]
            self._send_many(links + moderators, QuestionUpdated(question=question))
            cut = question_for(question, moderator=False)
            self._send_many(others, QuestionUpdated(question=cut))
        self._polls_pending.clear()
        self._questions_pending.clear()

    def _is_moderator(self, conn: ConnId) -> bool:
        peer = self._peers.get(conn)
        return peer is not None and peer.ticket_role is TicketRole.MODERATOR

    def _sees_everyone(self, conn: ConnId) -> bool:
        """Sent every roster change even in a large event: a moderator, or a participant
        of protocol version 1, which knows no RosterView."""
        peer = self._peers.get(conn)
        return peer is None or peer.ticket_role is TicketRole.MODERATOR or peer.version < 2

    def _send_polls(self, conn: ConnId, *, whole: bool) -> None:
        """Every poll and question, to a joining participant (``whole``: a moderator) or link."""
        for poll in self._polls.values():
            shown = poll if whole else poll_for(poll, moderator=False)
            if shown is not None:
                self._send(conn, PollUpdated(poll=shown))
        for question in self._questions.values():
            cut = question if whole else question_for(question, moderator=False)
            self._send(conn, QuestionUpdated(question=cut))

    def _down_links(self, message: Message) -> None:
        self._send_many(self._synced_links(), message)

    def _down_chat(self, seq: int, posted: ChatPosted, encoded: EncodedMessage) -> None:
        if seq <= self._log.last_seq:
            return  # already here: a replay overlapping what came live
        self._log.append(Entry(seq, posted, encoded))
        if self._outgoing:
            for index, waiting in enumerate(self._outgoing):
                if waiting.sender == posted.sender and waiting == msgspec.structs.replace(
                    posted, sender_display_name=waiting.sender_display_name
                ):
                    del self._outgoing[index]
                    break
        if posted.to is None:
            targets = list(self._audience())
        else:
            targets = [
                conn
                for conn in (self._locals.get(posted.sender), self._locals.get(posted.to))
                if conn is not None
            ]
            if len(targets) == 2 and targets[0] == targets[1]:
                targets.pop()
        for conn, peer in self._links.items():
            if not peer.synced:
                continue
            if posted.to is not None and not (
                posted.sender in peer.names or posted.to in peer.names
            ):
                continue
            if peer.last_seq is None or peer.last_seq + 1 != seq:
                self._send(conn, ChatMark(seq=seq))
            peer.last_seq = seq
            targets.append(conn)
        if targets:
            self._out.append(SendToMany(tuple(targets), encoded))

    def _refuse_member(self, name: str, code: ErrorCode, message: str) -> None:
        route = self._routes.get(name)
        if route is None:
            return
        if route.local:
            self._send(route.conn, Error(code=code, message=message))
        else:
            self._send(route.conn, Refused(name=name, code=code, message=message))

    # -- child links (this server as a parent) ---------------------------------------------

    def _routes_through(self, name: str, conn: ConnId) -> bool:
        route = self._routes.get(name)
        return route is not None and route.conn == conn and not route.local

    def _from_child(self, peer: _Peer, message: Message) -> None:
        match message:
            case ChatPosted():
                if self._routes_through(message.sender, peer.conn):
                    self._up_chat(message)
                # else stale: the sender moved or left while it travelled
            case MemberJoined() as joined:
                self._join(joined, peer.conn, local=False)
            case MemberLeft(name=name):
                if self._routes_through(name, peer.conn):
                    del self._routes[name]
                    peer.names.discard(name)
                    self._gone(name)
                    self._up_leave(name)
            case LinkRequest(name=name) as request:
                command = request.command()  # already checked by wire
                if self._routes_through(name, peer.conn):
                    self._up_request(name, command)
            case Resync(last_seq=last_seq):
                self._resync(peer, last_seq)
            case RequestKeyFrame(stream_id=stream_id):
                self._want_keyframe(stream_id, from_up=False)
            case _:
                pass  # RosterUpdate, StreamOpened, StreamClosed Up: not used by this cascade

    def _resync(self, peer: _Peer, last_seq: int) -> None:
        """Bring a child up to date: the state, the bans, the chat it missed, then Synced."""
        conn = peer.conn
        self._send(conn, RosterReset())
        self._send_state(conn, link=True)
        self._send(conn, RosterDone())
        self._send_polls(conn, whole=True)
        banned = sorted(self._banned)
        for start in range(0, len(banned), BANNED_CHUNK):
            self._send(conn, Banned(credential_ids=tuple(banned[start : start + BANNED_CHUNK])))
        peer.last_seq = None
        settings = self._settings
        for entry in self._log.recent(
            peer.names, after=last_seq, count=settings.chat_log_size, budget=settings.replay_budget
        ):
            if peer.last_seq is None or peer.last_seq + 1 != entry.seq:
                self._send(conn, ChatMark(seq=entry.seq))
            self._out.append(SendTo(conn, entry.encoded))
            peer.last_seq = entry.seq
        self._send(conn, Synced())
        peer.synced = True
        self._links_cache = None

    # -- the link Up (this server as a child) -------------------------------------------------

    def _step(self, given: UpstreamInput) -> bool:
        following = UPSTREAM_TRANSITIONS.get((self._up_state, given))
        if following is None:
            return False
        self._up_state = following
        return True

    def _on_upstream_connected(self, conn: ConnId) -> None:
        if not self._step(UpstreamInput.TRANSPORT_UP):
            self._out.append(CloseConnection(conn, "no link Up was asked for"))
            return
        self._up_conn = conn
        name = self._settings.server_name
        self._send(conn, Hello(role=Role.SERVER_LINK, version=PROTOCOL_VERSION, client=name))

    def _on_upstream_message(self, message: Message) -> None:
        up = self._up_conn
        assignment = self._assignment
        if up is None or assignment is None:
            return
        try:
            match message:
                case Welcome(server=server):
                    self._parent_name = server
                    secret = assignment.link_secret or ""
                    self._send(up, Auth(ticket=link_ticket(self._settings.server_name, secret)))
                case AuthOk(event=event):
                    if event != self._event_id:
                        raise RemoteProtocolError(f"the parent holds event {event}")
                    self._step(UpstreamInput.AUTH_OK)
                    for route in self._routes.values():
                        self._send(up, route.joined)
                    self._send(up, Resync(last_seq=self._log.last_seq))
                case Ping():
                    self._send(up, message.pong())
                case (
                    ChatMark()
                    | Synced()
                    | RosterReset()
                    | RosterDone()
                    | Evict()
                    | Refused()
                    | Banned()
                ):
                    self._from_parent(up, message)
                case ChatPosted():
                    if self._expect is None:
                        raise RemoteProtocolError("chat Down before any ChatMark")
                    seq, self._expect = self._expect, self._expect + 1
                    self._down_chat(seq, message, encode_message(message))
                case (
                    RosterUpdate()
                    | StateSnapshot()
                    | StreamOpened()
                    | StreamClosed()
                    | PollUpdated()
                    | QuestionUpdated()
                    | RecordingChanged()
                ):
                    self._down([message])
                case RequestKeyFrame(stream_id=stream_id):
                    self._want_keyframe(stream_id, from_up=True)
                case Bye(reason=ByeReason.EVENT_ENDED):
                    self._on_ended()  # the event ends down the whole tree
                case _:
                    pass  # Pong, Error; AuthFailed and other Byes end in ConnectionLost
        except RemoteProtocolError as exc:
            self._out.append(SendTo(up, encode_message(Bye.for_error(exc))))
            self._out.append(CloseConnection(up, f"protocol error: {exc}"))
            self._upstream_lost()

    def _from_parent(self, up: ConnId, message: Message) -> None:
        match message:
            case ChatMark(seq=seq):
                self._expect = seq
            case Synced():
                if self._step(UpstreamInput.SYNCED):
                    self._failures = 0
                    for posted in self._outgoing:
                        self._send(up, posted)
                    if self._told_down:
                        self._told_down = False
                        self._send_many(self._audience(), UpstreamChanged(reachable=True))
            case _:
                self._down([message])

    def _upstream_lost(self) -> None:
        if not self._step(UpstreamInput.LOST):
            return
        self._up_conn = None
        self._expect = None
        if not self._told_down:
            # Once per outage, not per failed try: the next word is that it is back.
            self._told_down = True
            self._send_many(self._audience(), UpstreamChanged(reachable=False))
        delay = self._settings.backoff.delay(self._failures, self._jitter())
        self._failures += 1
        self._retry_at = self._now + delay
        self._out.append(RequestWakeup(self._retry_at))

    def _on_timer(self) -> None:
        if self._count_due is not None and self._now >= self._count_due:
            self._count_due = None  # the pass's end sends the count (_send_count)
        if self._up_state is not Upstream.WAITING or self._assignment is None:
            return
        if self._now < self._retry_at:
            self._out.append(RequestWakeup(self._retry_at))
            return
        self._step(UpstreamInput.WAKEUP)
        self._out.append(ConnectUpstream(self._assignment.parent or ""))

    # -- the Controller's word ------------------------------------------------------------------

    def _on_assignment(self, assignment: AssignmentReceived) -> None:
        old = self._assignment
        if old is not None and (old.event_id, old.role) != (assignment.event_id, assignment.role):
            raise LocalProtocolError("a room holds one event in one role: make another room")
        self._assignment = assignment
        self._listed_before = self._wall - self._settings.list_lag
        if old is None:
            self._event_id = str(assignment.event_id)
            self._title = _NOT_TITLE.sub(" ", assignment.title)[:256]
            if assignment.role is ServerRole.MAIN:
                self._floor = Floor(event=self._event_id, title=self._title)
                self._poll_authority, self._question_authority = Polls(), Questions()
                self._log = ChatLog(
                    self._settings.chat_log_size, last_seq=self._settings.chat_seq_base
                )
            else:
                self._connect_up(assignment)
            return
        for conn in list(self._locals.values()):
            if self._peers[conn].credential_id in assignment.revoked:
                self._close(conn, ByeReason.REMOVED, "the credential was revoked")
        for peer in list(self._links.values()):
            if peer.name not in assignment.children:
                self._close(peer.conn, ByeReason.SHUTDOWN, "no longer a child of this server")
        if assignment.role is ServerRole.CHILD and assignment.parent != old.parent:
            if self._up_conn is not None:
                self._out.append(
                    SendTo(self._up_conn, encode_message(Bye(reason=ByeReason.NORMAL)))
                )
                self._out.append(CloseConnection(self._up_conn, "the parent changed"))
                self._up_conn = None
            self._failures = 0
            self._connect_up(assignment)

    def _connect_up(self, assignment: AssignmentReceived) -> None:
        self._step(UpstreamInput.ASSIGNED)
        self._expect = None
        self._out.append(ConnectUpstream(assignment.parent or ""))

    def _on_ended(self) -> None:
        self._ended = True
        self._roster_pending.clear()
        # Everyone goes at once: no one is told of each departure.
        self._locals.clear()
        self._ledger.close_all(self._wall)
        self._links.clear()
        self._routes.clear()
        self._audience_cache = self._links_cache = None
        for conn in list(self._peers):
            self._close(conn, ByeReason.EVENT_ENDED, "the event has ended")
        if self._up_conn is not None:
            self._out.append(
                SendTo(self._up_conn, encode_message(Bye(reason=ByeReason.EVENT_ENDED)))
            )
            self._out.append(CloseConnection(self._up_conn, "the event has ended"))
            self._up_conn = None
        self._up_state = Upstream.NONE
