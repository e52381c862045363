"""The Controller's decisions, as a sans-IO core: events and links in, commands out.

``Planner`` is told what the database says at each tick (the due events and
their resolved trees), which live servers hold a control link, and what each
reports; it answers with commands: send this assignment to this server, end
this event there, store or forget the link secrets, record the tree's live
state, record who attended where (and close what a vanished server or the
event's end left open). It never touches a socket, a clock, a database or a random source:
time comes in ``tick``, fresh link secrets from the ``new_secret`` callable it
is given, and ``service`` carries out what it asks, in order. It knows the
Center's due events only by their shape (``DueEventLike``) and the Manager's
trees only as ``EventTree`` values. docs/controller.md, "How the Controller
decides", walks through the states.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Final, Protocol

from townhall.live.events import AssignmentReceived, ServerRole
from townhall.wire.messages import Poll, Question
from townhall.wire.names import LiveState, ServerState

__all__ = [
    "ATTENDANCE_REFRESH",
    "CloseAttendance",
    "Command",
    "DueEventLike",
    "EventTree",
    "ForgetEvent",
    "LiveState",
    "Planner",
    "RecordAttendance",
    "RecordLiveState",
    "RecordPolls",
    "RecordRemovals",
    "RemovedMember",
    "ReportedEvent",
    "ReportedVisit",
    "SaveAssignments",
    "SendAssignment",
    "SendEnd",
    "ServerState",
    "StoredAssignment",
    "TreeServer",
]

ATTENDANCE_REFRESH: Final = timedelta(seconds=60)
"""Each server's whole attendance goes to the Center this often even unchanged: it
dates the server's last report there, and repairs a write that failed."""


# -- inputs ------------------------------------------------------------------------------


class DueEventLike(Protocol):
    """What the Planner reads of a due event (``sources.DueEvent``)."""

    @property
    def event_id(self) -> int: ...
    @property
    def title(self) -> str: ...
    @property
    def ends_at(self) -> datetime: ...
    @property
    def cancelled(self) -> bool: ...
    @property
    def credentials(self) -> Mapping[str, str]: ...
    @property
    def revoked(self) -> frozenset[str]: ...
    @property
    def event_keys(self) -> tuple[bytes, ...]: ...


@dataclass(frozen=True, slots=True)
class TreeServer:
    """A server's place in an event's tree, with what the Center shows of it."""

    name: str
    parent: str | None  # None: the main server
    address: str  # host:port ([v6]:port) where participants and children reach it
    zone: str


@dataclass(frozen=True, slots=True)
class EventTree:
    """An event's resolved tree: the main server first, every parent before its children."""

    servers: tuple[TreeServer, ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for index, server in enumerate(self.servers):
            if (server.parent is None) != (index == 0) or (
                server.parent is not None and server.parent not in seen
            ):
                raise ValueError("the main server first, every parent before its children")
            if server.name in seen:
                raise ValueError(f"{server.name} is twice in the tree")
            seen.add(server.name)

    @property
    def main(self) -> TreeServer | None:
        return self.servers[0] if self.servers else None

    def children_of(self, name: str) -> tuple[str, ...]:
        return tuple(s.name for s in self.servers if s.parent == name)


@dataclass(frozen=True, slots=True)
class RemovedMember:
    """A moderator's Remove, as the event's main server reports it."""

    credential_id: str
    by_credential_id: str
    name: str = ""
    by_name: str = ""


@dataclass(frozen=True, slots=True)
class ReportedVisit:
    """One participant's stay on the reporting server (naive UTC; ``left_at`` None: there)."""

    credential_id: str
    name: str
    joined_at: datetime
    left_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ReportedEvent:
    """One event as a live server reports holding it."""

    event_id: int
    role: str  # "main" | "child"
    upstream: str  # an Upstream's value (townhall.wire.names)
    participants: int
    children: tuple[str, ...] = ()
    removed: tuple[RemovedMember, ...] = ()  # the main server's Removes
    attendance: tuple[ReportedVisit, ...] = ()  # its own participants' visits
    attendance_missed: int = 0  # joins it could not keep or send


@dataclass(frozen=True, slots=True, order=True)
class StoredAssignment:
    """What the Controller keeps of an assignment, one row per (event, server).

    The link secret is what a child presents Up; keeping it makes a restarted
    Controller send the very same assignments, so existing links stay valid.
    """

    event_id: int
    server: str
    role: str  # "main" | "child"
    parent: str | None
    link_secret: str | None


# -- commands ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendAssignment:
    """Send ``assignment`` to ``server`` over its control link."""

    server: str
    assignment: AssignmentReceived


@dataclass(frozen=True, slots=True)
class SendEnd:
    """Tell ``server`` to close its room of ``event_id``."""

    server: str
    event_id: int


@dataclass(frozen=True, slots=True)
class SaveAssignments:
    """Replace what is stored of ``event_id`` by ``rows`` (before sending what they hold)."""

    event_id: int
    rows: tuple[StoredAssignment, ...]


@dataclass(frozen=True, slots=True)
class ForgetEvent:
    """Delete what is stored of ``event_id``: it is over."""

    event_id: int


@dataclass(frozen=True, slots=True)
class RecordLiveState:
    """Report the event's tree state to the Center (``sources.ControllerSources``)."""

    event_id: int
    state: LiveState
    servers: tuple[ServerState, ...]


@dataclass(frozen=True, slots=True)
class RecordRemovals:
    """Record these Removes in the Center (``center.live.record_removals``): it bars the people."""

    event_id: int
    removed: tuple[RemovedMember, ...]


@dataclass(frozen=True, slots=True)
class RecordAttendance:
    """Keep these visits on ``server`` in the Center, which it last heard of at ``at``."""

    event_id: int
    server: str
    zone: str
    at: datetime | None  # the server's time of the report
    visits: tuple[ReportedVisit, ...]
    missed: int


@dataclass(frozen=True, slots=True)
class CloseAttendance:
    """Close the visits the Center holds open on ``server`` (None: on any server).

    ``at`` None: at the time the Center last heard of that server. ``cause``
    is kept with each visit closed: "server-loss" (the server vanished with
    them, the report is incomplete there) or "event-end" (they were there
    when the event ended).
    """

    event_id: int
    server: str | None
    at: datetime | None
    cause: str


@dataclass(frozen=True, slots=True)
class RecordPolls:
    """Keep the event's polls and questions in the Center (``center.polls.record_polls``),
    replacing what was kept: the main server's whole record, as it last reported it."""

    event_id: int
    polls: tuple[Poll, ...]
    questions: tuple[Question, ...]


Command = (
    SendAssignment
    | SendEnd
    | SaveAssignments
    | ForgetEvent
    | RecordLiveState
    | RecordRemovals
    | RecordAttendance
    | CloseAttendance
    | RecordPolls
)


# -- the core ------------------------------------------------------------------------------


def link_digest(secret: str) -> str:
    """What a parent holds of its child's link secret (``live.admission.check_link``)."""
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(eq=False, slots=True)
class _Content:
    title: str
    credentials: Mapping[str, str]
    revoked: frozenset[str]
    event_keys: tuple[bytes, ...]

    @classmethod
    def of(cls, due: DueEventLike) -> _Content:
        return cls(due.title, dict(due.credentials), frozenset(due.revoked), tuple(due.event_keys))

    def same(self, due: DueEventLike) -> bool:
        return (
            self.title == due.title
            and self.event_keys == tuple(due.event_keys)
            and self.revoked == due.revoked
            and self.credentials == due.credentials
        )


@dataclass(eq=False, slots=True)
class _Event:
    event_id: int
    rows: tuple[StoredAssignment, ...] = ()
    tree: EventTree | None = None
    content: _Content | None = None
    assignments: dict[str, AssignmentReceived] = field(default_factory=dict)
    was_ready: bool = False
    restored: bool = False  # assigned by a previous process
    recorded: tuple[LiveState, tuple[ServerState, ...]] | None = None
    removals: set[str] = field(default_factory=set)  # credential ids sent to the Center
    # attendance, by server: what was sent to the Center, when, and the last report's time
    visits: dict[str, dict[tuple[str, datetime], ReportedVisit]] = field(default_factory=dict)
    missed: dict[str, int] = field(default_factory=dict)
    refreshed: dict[str, datetime] = field(default_factory=dict)
    heard: dict[str, datetime] = field(default_factory=dict)
    polls: RecordPolls | None = None  # the last record sent to the Center

    @property
    def secrets(self) -> dict[str, str]:
        return {row.server: row.link_secret for row in self.rows if row.link_secret is not None}


class Planner:
    """Decides each due event's assignments and state; see the module docstring.

    ``restored`` are the rows the service stored before a restart: their link
    secrets are used again, and their events are ended if they are no longer
    due. Until the first ``tick`` the Planner knows no due event, so it ends
    nothing a server reports (it may be about to assign it). For ``settle``
    after the first tick a restored event is recorded only once ready: its
    servers are still coming back, and the Center keeps showing the state the
    previous Controller recorded rather than a passing ``degraded``.
    """

    def __init__(
        self,
        *,
        grace: timedelta,
        new_secret: Callable[[], str],
        restored: Iterable[StoredAssignment] = (),
        settle: timedelta = timedelta(0),
    ) -> None:
        self._grace = grace
        self._new_secret = new_secret
        self._settle = settle
        self._settled_at: datetime | None = None  # the first tick plus ``settle``
        self._now: datetime | None = None
        self._events: dict[int, _Event] = {}
        for row in sorted(restored):
            event = self._events.setdefault(row.event_id, _Event(row.event_id, restored=True))
            event.rows += (row,)
        self._closed: set[int] = set()  # ended by this process; recorded once
        self._connected: set[str] = set()
        self._sent: dict[str, dict[int, AssignmentReceived]] = {}  # over the current links
        self._ending: dict[str, set[int]] = {}  # Ends sent over the current links
        self._reports: dict[str, dict[int, ReportedEvent]] = {}
        self._ticked = False
        self._out: list[Command] = []

    # -- what the service and the tests may read -------------------------------------------

    @property
    def connected(self) -> frozenset[str]:
        return frozenset(self._connected)

    def state_of(self, event_id: int) -> LiveState:
        if event_id in self._closed:
            return LiveState.ENDED
        event = self._events.get(event_id)
        if event is None or event.recorded is None:
            return LiveState.SCHEDULED
        return event.recorded[0]

    def event_states(self) -> dict[int, LiveState]:
        """The state of every event the Planner holds (the metrics count them)."""
        return {event_id: self.state_of(event_id) for event_id in self._events}

    def assignment_counts(self) -> dict[str, int]:
        """How many events each server is assigned, by server name (metrics)."""
        counts: dict[str, int] = {}
        for event in self._events.values():
            for server in event.assignments:
                counts[server] = counts.get(server, 0) + 1
        return counts

    def assignments_for(self, server: str) -> dict[int, AssignmentReceived]:
        return {
            event.event_id: event.assignments[server]
            for event in self._events.values()
            if server in event.assignments
        }

    # -- inputs -------------------------------------------------------------------------------

    def tick(
        self,
        now: datetime,
        due: Sequence[DueEventLike],
        trees: Mapping[int, EventTree | None],
    ) -> list[Command]:
        """The database's view at ``now`` (naive UTC): every due event and its tree.

        ``trees`` maps an event id to its tree, or to None when it has none; an
        event missing from ``due`` is over (its end plus grace has passed, or
        it was deleted) and is torn down.
        """
        first, self._ticked = not self._ticked, True
        self._now = now
        if first:
            self._settled_at = now + self._settle
        seen: set[int] = set()
        for event in due:
            seen.add(event.event_id)
            if event.cancelled or now >= event.ends_at + self._grace:
                self._end(event.event_id)
                continue
            self._closed.discard(event.event_id)
            self._plan(event, trees.get(event.event_id))
        for event_id in [e for e in self._events if e not in seen]:
            self._end(event_id)
        self._closed &= seen  # the rest has left the due list for good
        if first:
            for name in sorted(self._connected):
                self._reconcile(name)
        self._update_states()
        return self._take()

    def server_connected(self, name: str) -> list[Command]:
        """``name`` holds a control link now (a newer one replaces the old one)."""
        self._connected.add(name)
        self._sent[name] = {}
        self._ending[name] = set()
        self._reports.pop(name, None)
        for event in self._events.values():
            if name in event.assignments:
                self._send(name, event.assignments[name])
        self._update_states()
        return self._take()

    def server_lost(self, name: str) -> list[Command]:
        """``name``'s control link is gone: its visits still open end where it was last heard."""
        for event in self._events.values():
            sent = event.visits.get(name, {})
            still = [key for key, visit in sent.items() if visit.left_at is None]
            if still:
                # Forgotten as sent: should the server come back with them, they reopen.
                for key in still:
                    del sent[key]
                at = event.heard.get(name)
                self._out.append(CloseAttendance(event.event_id, name, at, "server-loss"))
        self._connected.discard(name)
        self._sent.pop(name, None)
        self._ending.pop(name, None)
        self._reports.pop(name, None)
        self._update_states()
        return self._take()

    def status_received(
        self, name: str, events: Sequence[ReportedEvent], at: datetime | None = None
    ) -> list[Command]:
        """``name`` reports every event it holds, at its time ``at`` (naive UTC);
        an event not its own is ended there."""
        if name not in self._connected:
            return []
        self._reports[name] = {report.event_id: report for report in events}
        for report in events:
            self._removals(name, report)
            self._attendance(name, report, at)
        if self._ticked:
            self._reconcile(name)
        self._update_states()
        return self._take()

    def record_received(
        self, name: str, event_id: int, polls: Sequence[Poll], questions: Sequence[Question]
    ) -> list[Command]:
        """``name`` reports an event's polls and questions: kept if it is the event's main
        server (a child's or a stranger's report is ignored) and they changed."""
        event = self._events.get(event_id)
        assignment = event.assignments.get(name) if event is not None else None
        if event is None or assignment is None or assignment.role is not ServerRole.MAIN:
            return []
        record = RecordPolls(event_id, tuple(polls), tuple(questions))
        if record != event.polls:
            event.polls = record
            self._out.append(record)
        return self._take()

    def _removals(self, name: str, report: ReportedEvent) -> None:
        """Pass on the Removes that the event's main server, and only it, reports anew."""
        event = self._events.get(report.event_id)
        assignment = event.assignments.get(name) if event is not None else None
        if event is None or assignment is None or assignment.role is not ServerRole.MAIN:
            return
        new = tuple(r for r in report.removed if r.credential_id not in event.removals)
        if new:
            event.removals.update(r.credential_id for r in new)
            self._out.append(RecordRemovals(event.event_id, new))

    def _attendance(self, name: str, report: ReportedEvent, at: datetime | None) -> None:
        """Pass on the visits a server of the event's tree reports anew or changed.

        All of them go again every ``ATTENDANCE_REFRESH`` (by the server's
        clock): the Center keeps them by (server, credential, join time).
        """
        event = self._events.get(report.event_id)
        if event is None or name not in event.assignments or event.tree is None:
            return
        zone = next((s.zone for s in event.tree.servers if s.name == name), "")
        if at is not None:
            event.heard[name] = at
        sent = event.visits.setdefault(name, {})
        last = event.refreshed.get(name)
        # Nothing ever reported there: nothing to date or repair.
        anything = bool(report.attendance or sent)
        refresh = anything and at is not None and (last is None or at - last >= ATTENDANCE_REFRESH)
        changed = tuple(
            v for v in report.attendance if sent.get((v.credential_id, v.joined_at)) != v
        )
        missed = report.attendance_missed != event.missed.get(name, 0)
        if not (changed or missed or refresh):
            return
        visits = report.attendance if refresh else changed
        for visit in visits:
            sent[(visit.credential_id, visit.joined_at)] = visit
        event.missed[name] = report.attendance_missed
        if refresh and at is not None:
            event.refreshed[name] = at
        self._out.append(
            RecordAttendance(event.event_id, name, zone, at, visits, report.attendance_missed)
        )

    def _reconcile(self, name: str) -> None:
        """End, once per link, each event ``name`` reports that is not assigned to it."""
        ending = self._ending[name]
        for event_id in self._reports.get(name, {}):
            event = self._events.get(event_id)
            if (event is None or name not in event.assignments) and event_id not in ending:
                self._out.append(SendEnd(name, event_id))
                ending.add(event_id)

    # -- planning -------------------------------------------------------------------------------

    def _plan(self, due: DueEventLike, tree: EventTree | None) -> None:
        event = self._events.setdefault(due.event_id, _Event(due.event_id))
        if tree is not None and not tree.servers:
            tree = None
        if event.content is not None and event.content.same(due) and event.tree == tree:
            assignments = event.assignments
        else:
            if event.content is None or not event.content.same(due):
                event.content = _Content.of(due)
            event.tree = tree
            assignments = self._assignments(event, event.content, tree)
        for server in [s for s in event.assignments if s not in assignments]:
            self._end_on(server, event.event_id)
        old = event.assignments
        event.assignments = assignments
        for server, assignment in assignments.items():
            previous = old.get(server)
            if previous is not None and previous.role is not assignment.role:
                # A room holds one event in one role: the old one goes first.
                self._end_on(server, event.event_id)
            self._send(server, assignment)

    def _assignments(
        self, event: _Event, content: _Content, tree: EventTree | None
    ) -> dict[str, AssignmentReceived]:
        if tree is None:
            if event.rows:
                event.rows = ()
                self._out.append(SaveAssignments(event.event_id, ()))
            return {}
        secrets = event.secrets
        rows: list[StoredAssignment] = []
        for server in tree.servers:
            secret = None
            if server.parent is not None:
                secret = secrets.get(server.name) or self._new_secret()
            role = "main" if server.parent is None else "child"
            rows.append(StoredAssignment(event.event_id, server.name, role, server.parent, secret))
        stored = tuple(sorted(rows))
        if stored != event.rows:
            event.rows = stored
            # Stored before anything that holds the new secrets is sent.
            self._out.append(SaveAssignments(event.event_id, stored))
        secrets = event.secrets
        address = {server.name: server.address for server in tree.servers}
        out: dict[str, AssignmentReceived] = {}
        for server in tree.servers:
            children = {
                child: link_digest(secrets[child]) for child in tree.children_of(server.name)
            }
            main = server.parent is None
            out[server.name] = AssignmentReceived(
                event_id=event.event_id,
                title=content.title,
                role=ServerRole.MAIN if main else ServerRole.CHILD,
                credentials=content.credentials,
                event_keys=content.event_keys,
                revoked=content.revoked,
                parent=None if main else address[server.parent or ""],
                link_secret=None if main else secrets[server.name],
                children=children,
            )
        # Unchanged assignments keep their identity, so nothing is sent again.
        for name, assignment in list(out.items()):
            previous = event.assignments.get(name)
            if previous is not None and previous == assignment:
                out[name] = previous
        return out

    def _send(self, server: str, assignment: AssignmentReceived) -> None:
        sent = self._sent.get(server)
        if sent is None or sent.get(assignment.event_id) is assignment:
            return
        sent[assignment.event_id] = assignment
        self._ending[server].discard(assignment.event_id)
        self._out.append(SendAssignment(server, assignment))

    def _end_on(self, server: str, event_id: int) -> None:
        sent = self._sent.get(server)
        if sent is None:
            return  # not linked: it is told when it reports the event after reconnecting
        sent.pop(event_id, None)
        self._ending[server].add(event_id)
        self._out.append(SendEnd(server, event_id))

    def _end(self, event_id: int) -> None:
        event = self._events.pop(event_id, None)
        if event is not None:
            servers = set(event.assignments) | {row.server for row in event.rows}
            for server in sorted(servers):
                self._end_on(server, event_id)
            if event.rows:
                self._out.append(ForgetEvent(event_id))
        if event_id not in self._closed:
            self._closed.add(event_id)
            # Whoever the linked servers still held was there until now; what is open
            # on any other server, that server took with it (closed where last heard).
            if event is not None:
                for server, sent in sorted(event.visits.items()):
                    if server in self._connected and any(v.left_at is None for v in sent.values()):
                        self._out.append(CloseAttendance(event_id, server, self._now, "event-end"))
                self._out.append(CloseAttendance(event_id, None, None, "server-loss"))
            reports = event.recorded[1] if event is not None and event.recorded else ()
            ended = tuple(
                ServerState(
                    r.name,
                    r.role,
                    r.parent,
                    r.zone,
                    r.address,
                    r.name in self._connected,
                    "none",
                    0,
                )
                for r in reports
            )
            self._out.append(RecordLiveState(event_id, LiveState.ENDED, ended))

    # -- states -----------------------------------------------------------------------------------

    def _update_states(self) -> None:
        settling = (
            self._now is not None and self._settled_at is not None and self._now < self._settled_at
        )
        for event in self._events.values():
            if event.content is None:
                continue  # restored, not seen due yet
            recorded = self._state(event)
            if recorded[0] is LiveState.READY:
                event.restored = False  # settled: whatever goes wrong now is shown
            elif settling and event.restored:
                continue
            if recorded != event.recorded:
                event.recorded = recorded
                self._out.append(RecordLiveState(event.event_id, *recorded))

    def _state(self, event: _Event) -> tuple[LiveState, tuple[ServerState, ...]]:
        tree = event.tree
        if tree is None:
            return LiveState.DEGRADED, ()
        reports: list[ServerState] = []
        linked = all_well = True
        for server in tree.servers:
            connected = server.name in self._connected
            report = self._reports.get(server.name, {}).get(event.event_id)
            main = server.parent is None
            role = "main" if main else "child"
            well = report is not None and report.role == role and (main or report.upstream == "up")
            linked = linked and connected
            all_well = all_well and well
            reports.append(
                ServerState(
                    name=server.name,
                    role=role,
                    parent=server.parent,
                    zone=server.zone,
                    address=server.address,
                    connected=connected,
                    upstream=report.upstream if report is not None else "none",
                    participants=report.participants if report is not None else 0,
                )
            )
        if linked and all_well:
            event.was_ready = True
            state = LiveState.READY
        elif not linked or event.was_ready:
            state = LiveState.DEGRADED
        else:
            state = LiveState.PREPARING
        return state, tuple(reports)

    def _take(self) -> list[Command]:
        out, self._out = self._out, []
        return out
