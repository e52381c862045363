"""The Center's side of live events: join tickets, what the Controller assigns, the tree's state.

Three parties read what this module keeps. Participants get a join ticket
(``join_role`` decides who may, ``issue_join_ticket`` writes it and records
its credential); the Controller asks ``due_events`` which events to set up
(each with its credentials list, revoked ids and event keys) and reports
each tree's state back through ``record_live_state``, and the moderators'
Removes through ``record_removals`` (which bar the people from new tickets
until ``let_back_in``); the event page and the API show that state
(``live_state``) and the removals. A person holds one credential per event
(a new ticket replaces it); anonymous guests are limited per address and per
event (``GuestLimits``), apart from the people with a right to attend. The
Center's Ed25519 signing key lives in ``<data>/center/signing-key.pem``
(``center_signing_key``). Functions take
a SQLAlchemy ``Session`` and leave the transaction to the caller, except
where a docstring says it commits. This module knows no HTTP and nothing of
how the Controller talks to live servers; the ticket format is
``townhall.ticket``'s, and ``docs/tickets.md`` says what goes in a ticket.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, cast

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    Update,
    bindparam,
    delete,
    func,
    insert,
    or_,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import events
from townhall.center.events import EventError
from townhall.center.tables import (
    Event,
    EventKey,
    LiveState,
    Registration,
    Removal,
    TicketCredential,
    User,
)
from townhall.center.trees import EventTrees, TreeRefused
from townhall.config import Settings
from townhall.pki import DevCA
from townhall.store.conventions import naive_utc, now_utc, utc
from townhall.wire import names
from townhall.wire.names import (
    ServerState,
    Upstream,
    is_cookie_name,
    is_cookie_value,
)

log = logging.getLogger("townhall.center")

LIVE_STATES = tuple(state.value for state in names.LiveState)
SERVER_ROLES = ("main", "child")
UPSTREAM_STATES = tuple(state.value for state in Upstream)
SIGNING_KEY_FILE = Path("center") / "signing-key.pem"
# A ticket lasts until the event's end plus this, within the format's bounds.
TICKET_OVERTIME = timedelta(hours=1)
MIN_TICKET_SECONDS = ticket.DEFAULT_LIFETIME
MAX_TICKET_SECONDS = ticket.MAX_LIFETIME
GUEST_NAME_MAX = 100
# Every credential travels in the Controller's assignment to each server of the
# tree; the control link's frame (16 MiB, about 90 bytes a credential) holds some
# 150,000. A person holds one credential per event (a new ticket replaces it), so
# people with a right to attend are never counted against anything; signed-in
# walk-ins of a public event are capped at this, and anonymous guests separately
# (``GuestLimits``), so neither can lock the event for the others.
MAX_EVENT_CREDENTIALS = 100_000
GUEST_PREFIX = "guest-"
# Replaced credentials kept per person and event (``_replace_credentials``).
KEPT_REPLACED = 20
_GUEST_ALPHABET = string.ascii_lowercase + string.digits


# --- the Center's signing key -------------------------------------------------------------


def signing_key_path(settings: Settings) -> Path:
    return settings.data / SIGNING_KEY_FILE


def center_signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The Center's Ed25519 key, made on first use (mode 0600).

    Two processes that start at once may both make a key; the first one
    linked into place wins and the other reads it, so every process of the
    Center signs with the same key.
    """
    path = signing_key_path(settings)
    if path.exists():
        return ticket.load_signing_key(path)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    candidate = path.with_name(f".{path.name}.{secrets.token_hex(6)}.new")
    ticket.save_signing_key(Ed25519PrivateKey.generate(), candidate)
    try:
        # link() never replaces an existing file, unlike rename(): a key another
        # process already handed out is never lost.
        os.link(candidate, path)
    except FileExistsError:
        pass
    finally:
        candidate.unlink(missing_ok=True)
    return ticket.load_signing_key(path)


def center_public_key(settings: Settings) -> Ed25519PublicKey:
    """The key live servers and participant applications check the Center's signatures with."""
    return center_signing_key(settings).public_key()


_Stamp = tuple[int, int, int]  # inode, size, mtime in ns: a replaced or rewritten file differs


def _stamp(path: Path) -> _Stamp | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)


class CenterKeys:
    """The signing key and CA certificate every ticket needs, read again only when their
    files change.

    Loading and parsing both files for every ticket was a join storm's waste
    (issue 14); a ``stat`` per ticket still notices a key or CA replaced on
    disk (by inode, size and mtime), so a rotation needs no restart. One per
    Center process (``CenterContext.keys``); threads may race to reload, which
    only loads the same file twice.
    """

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._key: tuple[_Stamp, Ed25519PrivateKey] | None = None
        self._ca: tuple[_Stamp, str] | None = None

    def signing_key(self) -> Ed25519PrivateKey:
        path = signing_key_path(self._settings)
        cached, stamp = self._key, _stamp(path)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        key = center_signing_key(self._settings)  # makes the key if there is none yet
        stamp = _stamp(path)
        if stamp is not None:
            self._key = (stamp, key)
        return key

    def ca_pem(self) -> str:
        cert_file = DevCA(self._settings.ca_dir).cert_file
        cached, stamp = self._ca, _stamp(cert_file)
        if cached is not None and cached[0] == stamp:
            return cached[1]
        pem = DevCA.ensure(self._settings.ca_dir).cert_file.read_text()
        stamp = _stamp(cert_file)
        if stamp is not None:
            self._ca = (stamp, pem)
        return pem


# --- event keys and the Controller's view --------------------------------------------------


def _keys_by_event(session: Session, event_ids: Sequence[int]) -> dict[int, list[bytes]]:
    keys: dict[int, list[bytes]] = {event_id: [] for event_id in event_ids}
    if event_ids:
        rows = session.execute(
            select(EventKey.event_id, EventKey.key)
            .where(EventKey.event_id.in_(event_ids))
            .order_by(EventKey.event_id, EventKey.created_at.desc(), EventKey.id.desc())
        )
        for event_id, key in rows:
            keys[event_id].append(bytes(key))
    return keys


def event_keys(session: Session, event_id: int) -> tuple[bytes, ...]:
    """The event's keys, newest first; makes the first one if there is none (flushed only)."""
    keys = [bytes(key) for key in session.scalars(_EVENT_KEYS, {"event_id": event_id})]
    if not keys:
        keys = [ticket.generate_event_key()]
        session.add(EventKey(event_id=event_id, key=keys[0], created_at=now_utc()))
        session.flush()
    return tuple(keys)


@dataclass(frozen=True, slots=True)
class DueEvent:
    """An event whose server tree should exist now, as the Controller needs it."""

    event_id: int
    title: str
    starts_at: datetime  # naive UTC, like the tables
    ends_at: datetime
    cancelled: bool  # status == "cancelled": the Controller tears it down
    credentials: Mapping[str, str]  # credential id -> hex SHA-256 of its secret (live ones)
    revoked: frozenset[str]  # revoked registration, or the user's account disabled
    event_keys: tuple[bytes, ...]  # newest first, at least one


def due_events(
    session: Session, *, now: datetime, lead: timedelta, grace: timedelta
) -> list[DueEvent]:
    """Every event with ``starts_at - lead <= now < ends_at + grace``, by start.

    Cancelled events are included, flagged, so that the Controller tears them
    down. An event without a key gets one here, and then the session is
    committed: a key must never reach live servers and then be lost. ``now``
    is naive UTC, like the tables (an aware time is converted).
    """
    if now.tzinfo is not None:
        now = naive_utc(now)
    rows = session.execute(
        select(Event.id, Event.title, Event.starts_at, Event.ends_at, Event.status)
        .where(
            Event.starts_at <= now + lead,
            Event.ends_at > now - grace,
            # Implied by the line above (no event lasts longer), but lets the index work.
            Event.starts_at > now - grace - events.MAX_DURATION,
        )
        .order_by(Event.starts_at, Event.id)
    ).all()
    ids = [row.id for row in rows]
    keys = _keys_by_event(session, ids)
    missing = [event_id for event_id in ids if not keys[event_id]]
    for event_id in missing:
        keys[event_id] = [ticket.generate_event_key()]
        session.add(EventKey(event_id=event_id, key=keys[event_id][0], created_at=now_utc()))
    if missing:
        session.commit()
    live: dict[int, dict[str, str]] = {event_id: {} for event_id in ids}
    revoked: dict[int, set[str]] = {event_id: set() for event_id in ids}
    if ids:
        credentials = session.execute(
            select(
                TicketCredential.event_id,
                TicketCredential.id,
                TicketCredential.secret_sha256,
                TicketCredential.revoked_at,
                TicketCredential.replaced_at,
                User.active,
            )
            .outerjoin(User, User.id == TicketCredential.user_id)
            .where(TicketCredential.event_id.in_(ids))
        )
        for event_id, credential_id, digest, revoked_at, replaced_at, active in credentials:
            if revoked_at is not None or active is False:
                revoked[event_id].add(credential_id)
            elif replaced_at is None:
                live[event_id][credential_id] = digest
    return [
        DueEvent(
            event_id=row.id,
            title=row.title,
            starts_at=row.starts_at,
            ends_at=row.ends_at,
            cancelled=row.status == "cancelled",
            credentials=live[row.id],
            revoked=frozenset(revoked[row.id]),
            event_keys=tuple(keys[row.id]),
        )
        for row in rows
    ]


# --- the tree's state, as the Controller reports it -------------------------------------------


def _server_json(server: ServerState) -> dict[str, Any]:
    if server.role not in SERVER_ROLES:
        raise ValueError(f"a server's role is one of {SERVER_ROLES}, not {server.role!r}")
    if server.upstream not in UPSTREAM_STATES:
        raise ValueError(f"upstream is one of {UPSTREAM_STATES}, not {server.upstream!r}")
    return {
        "name": server.name,
        "role": server.role,
        "parent": server.parent,
        "zone": server.zone,
        "address": server.address,
        "connected": bool(server.connected),
        "upstream": server.upstream,
        "participants": int(server.participants),
    }


def record_live_state(
    session: Session, event_id: int, state: str, servers: Sequence[ServerState]
) -> None:
    """Keep the state of the event's tree (one row per event, replaced), and commit."""
    if state not in LIVE_STATES:
        raise ValueError(f"a live state is one of {LIVE_STATES}, not {state!r}")
    values = {
        "event_id": event_id,
        "state": state,
        "servers": json.dumps([_server_json(server) for server in servers]),
        "updated_at": now_utc(),
    }
    # One statement, so two reporters (a Controller restarting over another) never
    # meet in a primary-key conflict; both dialects speak ON CONFLICT.
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    statement = insert(LiveState).values(**values)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=[LiveState.event_id],
            set_={key: statement.excluded[key] for key in ("state", "servers", "updated_at")},
        )
    )
    session.commit()


def _server_state(value: object) -> ServerState | None:
    if not isinstance(value, dict):
        return None
    try:
        return ServerState(
            name=str(value["name"]),
            role=str(value["role"]),
            parent=None if value.get("parent") is None else str(value["parent"]),
            zone=str(value["zone"]),
            address=str(value.get("address", "")),
            connected=bool(value["connected"]),
            upstream=str(value["upstream"]),
            participants=int(value["participants"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


# The hot reads of an event page and a ticket, built once with their values bound, of the
# tables and not the mapped classes: a statement of mapped attributes goes through the ORM's
# execution even when it loads no object, 85 us more a statement (bench/README.md, eleventh
# pass).
_LIVE_STATES = cast("Table", LiveState.__table__)
_EVENT_KEYS_TABLE = cast("Table", EventKey.__table__)
_LIVE_STATE = select(_LIVE_STATES.c.state, _LIVE_STATES.c.servers).where(
    _LIVE_STATES.c.event_id == bindparam("event_id")
)
_EVENT_KEYS = (
    select(_EVENT_KEYS_TABLE.c.key)
    .where(_EVENT_KEYS_TABLE.c.event_id == bindparam("event_id"))
    .order_by(_EVENT_KEYS_TABLE.c.created_at.desc(), _EVENT_KEYS_TABLE.c.id.desc())
)


# An event's last reported state and servers (``live_state``).
LiveView = tuple[str, list[ServerState]]

# The event with its people (``events.load_event``) and its live state, in one statement:
# the event API and the event page show both, and a statement of its own cost them a
# round trip (bench/README.md, tenth pass).
_EVENT_AND_LIVE_STATE = events.EVENT_BY_ID.add_columns(
    LiveState.state, LiveState.servers
).outerjoin(LiveState, LiveState.event_id == Event.id)


def live_state(session: Session, event_id: int) -> LiveView:
    """The last reported state and servers; ``("scheduled", [])`` if none was reported."""
    row = session.execute(_LIVE_STATE, {"event_id": event_id}).first()
    return _live_view(None, None) if row is None else _live_view(row.state, row.servers)


def visible_event_and_live_state(
    session: Session, event_id: int, user: User | None
) -> tuple[Event, LiveView]:
    """``events.get_visible`` and ``live_state`` of the event ``event_id`` at once."""
    found = session.execute(_EVENT_AND_LIVE_STATE, {"event_id": event_id}).unique().one_or_none()
    event, state, servers = found if found is not None else (None, None, None)
    return events.visible(session, event, event_id, user), _live_view(state, servers)


def _live_view(state: str | None, servers: str | None) -> LiveView:
    if state is None:  # never reported
        return "scheduled", []
    try:
        stored = json.loads(servers or "[]")
    except ValueError:
        stored = []
    return state, [s for s in map(_server_state, stored if isinstance(stored, list) else []) if s]


# --- join tickets ---------------------------------------------------------------------------


def join_role(
    session: Session,
    event: Event,
    user: User | None,
    registration: events.KnownRegistration = events.LOOK_UP,
) -> ticket.Role:
    """The role ``user`` joins the event in (``None``: someone not signed in), or EventError.

    Organizer, admins and moderators join as moderators, presenters as
    presenters, registered users as participants, and for a public event
    anyone signed in, and a guest not signed in, as a participant. A private
    event the user may not see is "not found", as everywhere in the API; a
    revoked registration is refused even for a public event. ``registration``:
    the user's, when the caller looked it up in this request.
    """
    if user is None:
        if event.visibility != "public":
            raise EventError(401, "not_signed_in", "sign in to join this event")
        return ticket.Role.PARTICIPANT
    if events.can_manage(event, user):
        return ticket.Role.MODERATOR
    if events.role_in(event, user, "presenter"):
        return ticket.Role.PRESENTER
    registration = events.known_registration(session, event, user, registration)
    if registration is not None and registration.status == "registered":
        return ticket.Role.PARTICIPANT
    if event.visibility != "public":
        raise EventError(404, "event_not_found", f"no event {event.id}")
    if registration is not None:
        raise EventError(403, "registration_revoked", "your registration was revoked")
    return ticket.Role.PARTICIPANT


def check_joinable(event: Event, now: datetime) -> None:
    """Refuse a cancelled or ended event (409); ``now`` is naive UTC."""
    if event.status == "cancelled":
        raise EventError(409, "event_cancelled", "the event is cancelled")
    if now >= event.ends_at:
        raise EventError(409, "event_ended", "the event has ended")


def may_join(
    session: Session,
    event: Event,
    user: User | None,
    now: datetime,
    registration: events.KnownRegistration = events.LOOK_UP,
) -> bool:
    """Whether ``user`` would get a ticket now (the event page shows Join only then);
    ``registration`` as for ``join_role``."""
    try:
        check_joinable(event, now)  # first: an ended event needs no query to say no
        if user is not None and registration is events.LOOK_UP:
            registration = events.registration_of(session, event, user)
        role = join_role(session, event, user, registration)
    except EventError:
        return False
    return role is ticket.Role.MODERATOR or not is_removed(session, event, user, registration)


def ticket_cookies(captured: Mapping[str, str]) -> dict[str, str]:
    """Of the proxy cookies captured from a trusted proxy (``SsoVerifier.captured_cookies``),
    those a ticket can carry: a name or value the format refuses is left out rather than
    refusing the ticket, and at most ``ticket.MAX_COOKIES`` are kept."""
    found: dict[str, str] = {}
    for name, value in captured.items():
        if len(found) == ticket.MAX_COOKIES:
            break
        # RFC 6265 §4.1.1, as the ticket checks them: anything else is left out.
        if is_cookie_name(name) and is_cookie_value(value):
            found[name] = value
    return found


def cookies_may_ride(center_url: str) -> bool:
    """Captured proxy cookies go only into tickets whose Center URL is HTTPS.

    The participant application sends them to that URL: over plain HTTP, anyone
    on the path would read the user's proxy session.
    """
    return center_url.lower().startswith("https://")


def warn_if_cookies_cannot_ride(settings: Settings) -> str | None:
    """At Center start: say so when cookie capture is configured but cannot be used."""
    url = settings.center.public_url
    if not settings.center.sso.capture_cookies or cookies_may_ride(url):
        return None
    message = (
        f"center.sso.capture_cookies is set but the Center's public URL {url} is not "
        "HTTPS: join tickets will carry no proxy cookie (they would travel in clear), "
        "so participants meet the proxy's sign-in; set center.base_url to the "
        "proxy's https:// URL"
    )
    log.warning(message)
    return message


def guest_username() -> str:
    return GUEST_PREFIX + "".join(secrets.choice(_GUEST_ALPHABET) for _ in range(8))


def ticket_lifetime(event: Event, issued_at: int) -> int:
    """Seconds from ``issued_at`` (Unix) to an hour after the event's end, within 10 min - 24 h."""
    until = int(utc(event.ends_at + TICKET_OVERTIME).timestamp())
    return max(MIN_TICKET_SECONDS, min(MAX_TICKET_SECONDS, until - issued_at))


def ticket_servers(session: Session, trees: EventTrees, event_id: int) -> list[ticket.ServerEntry]:
    """The event's tree in tree order (the main first), or EventError 409 ``no_tree``."""
    try:
        tree_name, servers = trees.servers(session, event_id)
    except TreeRefused as error:
        raise EventError(409, "no_tree", error.message) from error
    if not servers:
        raise EventError(409, "no_tree", f"the tree {tree_name} has no servers")
    # The format holds 32 servers; tree order keeps the main and the upper levels.
    return [
        ticket.ServerEntry(name=server.name, host=server.host, port=server.port, zone=server.zone)
        for server in servers[: ticket.MAX_SERVERS]
    ]


@dataclass(frozen=True, slots=True)
class GuestLimits:
    """Anonymous tickets to a public event: per client address in a window, and in all."""

    per_address: int = 20
    window: timedelta = timedelta(hours=1)
    per_event: int = 20_000

    @classmethod
    def of(cls, settings: Settings) -> GuestLimits:
        center = settings.center
        return cls(
            per_address=center.guest_tickets_per_address,
            window=timedelta(minutes=center.guest_ticket_window_minutes),
            per_event=center.guest_tickets_per_event,
        )


_ANONYMOUS = (TicketCredential.user_id.is_(None), TicketCredential.registration_id.is_(None))


def _check_guest_quota(
    session: Session, event: Event, limits: GuestLimits, client_address: str, now: datetime
) -> None:
    """Refuse an anonymous ticket past the address's rate or the event's guest quota."""
    recent = session.scalar(
        select(func.count())
        .select_from(TicketCredential)
        .where(
            TicketCredential.event_id == event.id,
            TicketCredential.client_address == client_address,
            TicketCredential.created_at > now - limits.window,
            *_ANONYMOUS,
        )
    )
    if (recent or 0) >= limits.per_address:
        minutes = int(limits.window.total_seconds() // 60)
        raise EventError(
            429,
            "guest_rate_limited",
            f"{limits.per_address} guest tickets in {minutes} minutes from your address; "
            "sign in, or try again later",
        )
    issued = session.scalar(
        select(func.count())
        .select_from(TicketCredential)
        .where(TicketCredential.event_id == event.id, *_ANONYMOUS)
    )
    if (issued or 0) >= limits.per_event:
        raise EventError(
            409,
            "too_many_guest_tickets",
            f"this event has given out {limits.per_event} guest tickets; sign in to join",
        )


_CREDENTIALS = cast("Table", TicketCredential.__table__)  # a mapped class's table is a Table

# Every person's credentials for the event, replaced ones too (built once, of the table as
# the event page's reads: every walk-in's ticket asks).
_PEOPLES_CREDENTIALS = (
    select(func.count())
    .select_from(_CREDENTIALS)
    .where(_CREDENTIALS.c.event_id == bindparam("event_id"), _CREDENTIALS.c.user_id.is_not(None))
)


def _check_walk_in_quota(session: Session, event: Event) -> None:
    # Counted from the (event, user) index alone, ten times faster than the exact count,
    # whose rows must be read for ``replaced_at`` (0.5 against 5.7 ms at 10,000, for every
    # ticket of a join storm). Below the cap, the exact count is too. The exact count's
    # statement is built only then: building it cost every ticket about 40 us.
    upper_bound = session.scalar(_PEOPLES_CREDENTIALS, {"event_id": event.id})
    if (upper_bound or 0) < MAX_EVENT_CREDENTIALS:
        return
    people = (TicketCredential.event_id == event.id, TicketCredential.user_id.is_not(None))
    issued = session.scalar(
        select(func.count())
        .select_from(TicketCredential)
        .where(*people, TicketCredential.replaced_at.is_(None))
    )
    if (issued or 0) >= MAX_EVENT_CREDENTIALS:
        raise EventError(
            409, "too_many_tickets", f"this event has given out {MAX_EVENT_CREDENTIALS} tickets"
        )


# A person's credentials are theirs by account, or for a guest's link by registration
# (``_replace_credentials``'s ``owner``).
Owner = Literal["user", "registration"]
_OWNER_COLUMN: dict[Owner, Any] = {
    "user": _CREDENTIALS.c.user_id,
    "registration": _CREDENTIALS.c.registration_id,
}


@functools.cache
def _replacing(owner: Owner) -> Update:
    """The UPDATE that marks an owner's live credentials replaced, built once per kind of
    owner: every ticket runs it, and building it cost more than running it. Core, not the
    ORM's bulk update: no loaded credential is ever kept in step with it."""
    table = _CREDENTIALS
    return (
        update(table)
        .where(
            table.c.event_id == bindparam("of_event"),
            table.c.replaced_at.is_(None),
            table.c.revoked_at.is_(None),
            _OWNER_COLUMN[owner] == bindparam("owner"),
        )
        .values(replaced_at=bindparam("now"))
    )


# The new credential: a plain INSERT of the table (compiled once per set of columns, which is
# one), not an object for the unit of work to flush: nothing reads it back.
_NEW_CREDENTIAL = insert(_CREDENTIALS)


def _replace_credentials(
    session: Session, event_id: int, owner: Owner, owner_id: int, now: datetime
) -> None:
    """Mark the live credentials of the owner (``owner``: "user" or "registration", and
    its id) replaced (a new one is coming), and prune.

    Replaced, not revoked: a revoked id travels in every assignment. The newest
    ``KEPT_REPLACED`` are kept so that revoking the person, or a moderator's
    Remove of a connection still open on an older ticket, finds them.
    """
    replaced = session.execute(
        _replacing(owner), {"of_event": event_id, "owner": owner_id, "now": now}
    )
    if not replaced.rowcount:  # type: ignore[attr-defined]
        # Nothing newly replaced: the last prune left at most KEPT_REPLACED, and only this
        # function marks credentials replaced (a person's first ticket skips a statement).
        return
    mine = _OWNER_COLUMN[owner] == owner_id
    stale = select(_CREDENTIALS.c.id).where(
        _CREDENTIALS.c.event_id == event_id,
        _CREDENTIALS.c.replaced_at.is_not(None),
        mine,
    )
    keep = stale.order_by(_CREDENTIALS.c.created_at.desc()).limit(KEPT_REPLACED)
    session.execute(
        delete(_CREDENTIALS).where(
            _CREDENTIALS.c.id.in_(stale), _CREDENTIALS.c.id.not_in(keep.scalar_subquery())
        )
    )


def _has_right(user: User | None, role: ticket.Role, registration: Registration | None) -> bool:
    """Organizer, moderators, presenters and registered people: never capped
    (``registration``: the user's own)."""
    if role is not ticket.Role.PARTICIPANT:
        return True
    if user is None:
        return False
    return registration is not None and registration.status == "registered"


def issue_join_ticket(
    session: Session,
    settings: Settings,
    event: Event,
    user: User | None,
    role: ticket.Role,
    *,
    trees: EventTrees,
    now: datetime,
    guest_name: str = "",
    cookies: Mapping[str, str] | None = None,
    registration: Registration | None = None,
    client_address: str = "",
    keys: CenterKeys | None = None,
    own_registration: events.KnownRegistration = events.LOOK_UP,
) -> bytes:
    """Make the credential of ``user`` (or of the guest of ``registration``, or of an
    anonymous guest called ``guest_name``) and its ticket.

    A person's new credential replaces their earlier ones for the event; an
    anonymous guest's counts against ``GuestLimits`` (429 ``guest_rate_limited``
    for ``client_address``, 409 ``too_many_guest_tickets``), a signed-in
    walk-in's against ``MAX_EVENT_CREDENTIALS``. Someone a moderator removed
    gets 403 ``removed`` (``is_removed``). The credential row is inserted in the
    session's transaction (the caller commits, then answers the bytes). Raises EventError
    409 ``no_tree`` when the event has no server tree. ``keys``: the process's
    ``CenterKeys`` (without, the key and CA are read from disk). ``own_registration``:
    the user's registration, when the caller looked it up in this request.
    """
    servers = ticket_servers(session, trees, event.id)
    # The user's registration, looked up once for the removal and the walk-in cap; a
    # moderator needs neither.
    own: Registration | None = None
    if user is not None and role is not ticket.Role.MODERATOR:
        own = events.known_registration(session, event, user, own_registration)
    if role is not ticket.Role.MODERATOR:  # a moderator could let themself back in anyway
        person = own if user is not None else registration
        if is_removed(session, event, user, person, client_address):
            raise EventError(
                403,
                "removed",
                "a moderator removed you from this event; ask a moderator to let you back in",
            )
    owner: tuple[Owner, int] | None = None  # whose credentials a new one replaces
    if user is not None:
        owner = ("user", user.id)
    elif registration is not None:
        owner = ("registration", registration.id)
    if owner is None:
        _check_guest_quota(session, event, GuestLimits.of(settings), client_address, now)
    elif not _has_right(user, role, own):
        _check_walk_in_quota(session, event)
    if user is not None:
        username, display_name = user.username, user.label
    elif registration is not None:
        # The same name for every ticket of the link: the roster, and a Remove, know it.
        username = f"{GUEST_PREFIX}{registration.id}-invited"
        display_name = registration.display_name or registration.email.partition("@")[0]
    else:
        username, display_name = guest_username(), guest_name.strip() or "Guest"
    credential = ticket.Credential.new(
        username=username, display_name=display_name[:200], role=role
    )
    key = event_keys(session, event.id)[0]
    if keys is None:
        keys = CenterKeys(settings)
    ca_pem = keys.ca_pem()
    issued_at = int(utc(now).timestamp())
    center_url = settings.center.public_url
    if not cookies_may_ride(center_url):
        cookies = None  # warn_if_cookies_cannot_ride said so at start
    try:
        data = ticket.issue_ticket(
            signing_key=keys.signing_key(),
            event_key=key,
            event_id=event.id,
            title=event.title,
            center_url=center_url,
            servers=servers,
            credential=credential,
            now=issued_at,
            lifetime=ticket_lifetime(event, issued_at),
            ca_pem=ca_pem,
            cookies=cookies or {},
        )
    except ValueError as error:
        # A server registered before the Manager took the ticket's name rule (issue 9),
        # whose name or address no ticket can carry, gets here.
        raise EventError(409, "ticket_unavailable", str(error)) from error
    if owner is not None:
        _replace_credentials(session, event.id, *owner, now)
    session.execute(
        _NEW_CREDENTIAL,
        {
            "id": credential.credential_id,
            "event_id": event.id,
            "user_id": user.id if user is not None else None,
            "registration_id": registration.id if user is None and registration else None,
            "client_address": client_address[:64] or None,
            "username": credential.username,
            "display_name": credential.display_name,
            "role": str(role),
            "secret_sha256": credential.secret_sha256,
            "created_at": now,
        },
    )
    return data


# --- removals: a moderator's Remove, as the event's main server reported it ----------------


@dataclass(frozen=True, slots=True)
class ReportedRemoval:
    """One Remove on the main server: whose credential, by whose, with the names shown."""

    credential_id: str
    by_credential_id: str
    name: str = ""
    by_name: str = ""


def _anonymous_name(name: str) -> bool:
    rest = name.removeprefix(GUEST_PREFIX)
    return rest != name and len(rest) == 8 and all(c in _GUEST_ALPHABET for c in rest)


def is_removed(
    session: Session,
    event: Event,
    user: User | None,
    registration: events.KnownRegistration,
    client_address: str = "",
) -> bool:
    """Whether a standing removal bars this person from the event.

    A person is their account, their email when vouched for, or the guest
    registration (personal link and its email); an anonymous guest is only
    known by the address the removed ticket was asked from. ``registration``:
    the user's own (``events.LOOK_UP``: not looked up yet), or the guest's.
    """
    values: dict[str, object] = {"event_id": event.id}
    by_email = False
    if user is not None:
        values["user_id"] = user.id
        if user.email and user.email_verified:
            by_email, values["email"] = True, user.email
        registration = events.known_registration(session, event, user, registration)
    elif registration is events.LOOK_UP:
        registration = None
    if registration is not None:
        values["registration_id"] = registration.id
        values["registration_email"] = registration.email
    by_address = user is None and registration is None and bool(client_address)
    if by_address:
        values["client_address"] = client_address
    if user is None and registration is None and not by_address:
        return False  # nobody to recognise
    statement = _removal_statement(user is not None, by_email, registration is not None, by_address)
    return session.scalar(statement, values) is not None


_REMOVALS = cast("Table", Removal.__table__)


@functools.cache
def _removal_statement(
    by_user: bool, by_email: bool, by_registration: bool, by_address: bool
) -> Select[Any]:  # Select's parameters differ in 2.0 and 2.1
    """``is_removed``'s statement, built once per shape (values bound by name): a removal's
    id, of the table as the ticket's other reads (``_LIVE_STATE``)."""
    removals = _REMOVALS
    people: list[ColumnElement[bool]] = []
    if by_user:
        people.append(removals.c.user_id == bindparam("user_id"))
    if by_email:
        people.append(removals.c.email == bindparam("email"))
    if by_registration:
        people.append(removals.c.registration_id == bindparam("registration_id"))
        people.append(removals.c.email == bindparam("registration_email"))
    if by_address:
        people.append(
            (removals.c.client_address == bindparam("client_address"))
            & removals.c.user_id.is_(None)
            & removals.c.registration_id.is_(None)
        )
    return (
        select(removals.c.id)
        .where(
            removals.c.event_id == bindparam("event_id"),
            removals.c.lifted_at.is_(None),
            or_(*people),
        )
        .limit(1)
    )


def record_removals(session: Session, event_id: int, removals: Sequence[ReportedRemoval]) -> int:
    """Keep the removals the event's main server reported, bar their people, and commit.

    Each removed person's credentials for the event are revoked too, so that a
    restarted main server keeps refusing them. A removal already kept, or of a
    credential this event never issued, is skipped. Returns how many are new.
    """
    new = 0
    now = now_utc()
    for reported in removals:
        exists = session.scalar(
            select(Removal.id).where(
                Removal.event_id == event_id, Removal.credential_id == reported.credential_id
            )
        )
        credential = session.get(TicketCredential, reported.credential_id)
        if credential is not None and credential.event_id != event_id:
            continue
        if credential is None and reported.name and not _anonymous_name(reported.name):
            # Pruned since (the person asked for many tickets): an account's, or a
            # link guest's, every credential carries the same username.
            credential = session.scalar(
                select(TicketCredential)
                .where(
                    TicketCredential.event_id == event_id,
                    TicketCredential.username == reported.name,
                )
                .order_by(TicketCredential.created_at.desc())
                .limit(1)
            )
        if exists is not None or credential is None:
            continue
        by = session.get(TicketCredential, reported.by_credential_id)
        if by is not None and by.event_id != event_id:
            by = None
        email = None
        if credential.registration_id is not None:
            registration = session.get(Registration, credential.registration_id)
            email = registration.email if registration is not None else None
        elif credential.user_id is not None:
            holder = session.get(User, credential.user_id)
            if holder is not None and holder.email and holder.email_verified:
                email = holder.email
        anonymous = credential.user_id is None and credential.registration_id is None
        session.add(
            Removal(
                event_id=event_id,
                credential_id=credential.id,
                user_id=credential.user_id,
                registration_id=credential.registration_id,
                email=email,
                client_address=credential.client_address if anonymous else None,
                name=(reported.name or credential.display_name)[:200],
                removed_by=(by.display_name if by is not None else reported.by_name)[:200],
                removed_by_user_id=by.user_id if by is not None else None,
                removed_at=now,
            )
        )
        mine: ColumnElement[bool] = TicketCredential.id == credential.id
        if credential.user_id is not None:
            mine = or_(mine, TicketCredential.user_id == credential.user_id)
        if credential.registration_id is not None:
            mine = or_(mine, TicketCredential.registration_id == credential.registration_id)
        session.execute(
            update(TicketCredential)
            .where(
                TicketCredential.event_id == event_id,
                TicketCredential.revoked_at.is_(None),
                mine,
            )
            .values(revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        new += 1
    session.commit()
    return new


def removals(session: Session, event: Event) -> list[Removal]:
    """The event's removals, newest first (lifted ones too: the organizer sees the history)."""
    return list(
        session.scalars(
            select(Removal)
            .where(Removal.event_id == event.id)
            .order_by(Removal.removed_at.desc(), Removal.id.desc())
        )
    )


def let_back_in(session: Session, event: Event, removal_id: int, by: User) -> Removal:
    """A moderator lifts a removal: the person may get tickets again (the caller commits)."""
    removal = session.get(Removal, removal_id)
    if removal is None or removal.event_id != event.id:
        raise EventError(404, "removal_not_found", f"no removal {removal_id} in this event")
    if removal.lifted_at is None:
        removal.lifted_at, removal.lifted_by = now_utc(), by.username
        session.flush()
    return removal
