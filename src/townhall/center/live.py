"""The Center's side of live events: join tickets, what the Controller assigns, the tree's state.

Three parties read what this module keeps. Participants get a join ticket
(``join_role`` decides who may, ``issue_join_ticket`` writes it and records
its credential); the Controller asks ``due_events`` which events to set up
(each with its credentials list, revoked ids and event keys) and reports
each tree's state back through ``record_live_state``; the event page and the
API show that state (``live_state``). The Center's Ed25519 signing key lives
in ``<data>/center/signing-key.pem`` (``center_signing_key``). Functions take
a SQLAlchemy ``Session`` and leave the transaction to the caller, except
where a docstring says it commits. This module knows no HTTP and nothing of
how the Controller talks to live servers; the ticket format is
``townhall.ticket``'s, and ``docs/tickets.md`` says what goes in a ticket.
"""

from __future__ import annotations

import json
import os
import secrets
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import events
from townhall.center.events import EventError
from townhall.center.tables import Event, EventKey, LiveState, TicketCredential, User
from townhall.config import Settings
from townhall.manager import registry
from townhall.pki import DevCA
from townhall.store.conventions import naive_utc, now_utc, utc
from townhall.wire import names
from townhall.wire.names import (
    ServerState,
    Upstream,
    Zone,
    is_cookie_name,
    is_cookie_value,
)

LIVE_STATES = tuple(state.value for state in names.LiveState)
SERVER_ROLES = ("main", "child")
UPSTREAM_STATES = tuple(state.value for state in Upstream)
SIGNING_KEY_FILE = Path("center") / "signing-key.pem"
# A ticket lasts until the event's end plus this, within the format's bounds.
TICKET_OVERTIME = timedelta(hours=1)
MIN_TICKET_SECONDS = ticket.DEFAULT_LIFETIME
MAX_TICKET_SECONDS = ticket.MAX_LIFETIME
GUEST_NAME_MAX = 100
# Credentials one event may hand out. Each ticket request makes one, and every
# one travels in the Controller's assignment to each server of the tree: this
# keeps that message well inside the control link's frame (16 MiB, about 90
# bytes a credential), however many anonymous requests a public event gets.
MAX_EVENT_CREDENTIALS = 100_000
GUEST_PREFIX = "guest-"
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
    keys = _keys_by_event(session, [event_id])[event_id]
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
                User.active,
            )
            .outerjoin(User, User.id == TicketCredential.user_id)
            .where(TicketCredential.event_id.in_(ids))
        )
        for event_id, credential_id, digest, revoked_at, active in credentials:
            if revoked_at is not None or active is False:
                revoked[event_id].add(credential_id)
            else:
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


def live_state(session: Session, event_id: int) -> tuple[str, list[ServerState]]:
    """The last reported state and servers; ``("scheduled", [])`` if none was reported."""
    row = session.execute(
        select(LiveState.state, LiveState.servers).where(LiveState.event_id == event_id)
    ).first()
    if row is None:
        return "scheduled", []
    try:
        stored = json.loads(row.servers)
    except ValueError:
        stored = []
    servers = [s for s in map(_server_state, stored if isinstance(stored, list) else []) if s]
    return row.state, servers


# --- join tickets ---------------------------------------------------------------------------


def join_role(session: Session, event: Event, user: User | None) -> ticket.Role:
    """The role ``user`` joins the event in (``None``: someone not signed in), or EventError.

    Organizer, admins and moderators join as moderators, presenters as
    presenters, registered users as participants, and for a public event
    anyone signed in, and a guest not signed in, as a participant. A private
    event the user may not see is "not found", as everywhere in the API; a
    revoked registration is refused even for a public event.
    """
    if user is None:
        if event.visibility != "public":
            raise EventError(401, "not_signed_in", "sign in to join this event")
        return ticket.Role.PARTICIPANT
    if events.can_manage(event, user):
        return ticket.Role.MODERATOR
    if events.role_in(event, user, "presenter"):
        return ticket.Role.PRESENTER
    registration = events.registration_of(session, event, user)
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


def may_join(session: Session, event: Event, user: User | None, now: datetime) -> bool:
    try:
        join_role(session, event, user)
        check_joinable(event, now)
    except EventError:
        return False
    return True


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


def guest_username() -> str:
    return GUEST_PREFIX + "".join(secrets.choice(_GUEST_ALPHABET) for _ in range(8))


def ticket_lifetime(event: Event, issued_at: int) -> int:
    """Seconds from ``issued_at`` (Unix) to an hour after the event's end, within 10 min - 24 h."""
    until = int(utc(event.ends_at + TICKET_OVERTIME).timestamp())
    return max(MIN_TICKET_SECONDS, min(MAX_TICKET_SECONDS, until - issued_at))


def ticket_servers(session: Session, event_id: int) -> list[ticket.ServerEntry]:
    """The event's tree in tree order (the main first), or EventError 409 ``no_tree``."""
    try:
        resolved, _ = registry.event_tree(session, event_id)
    except registry.ManagerError as error:
        raise EventError(409, "no_tree", error.message) from error
    if not resolved.nodes:
        raise EventError(409, "no_tree", f"the tree {resolved.tree.name} has no servers")
    # The format holds 32 servers; tree order keeps the main and the upper levels.
    return [
        ticket.ServerEntry(
            name=node.server.name,
            host=node.server.host,
            port=node.server.port,
            zone=Zone(node.server.zone),
        )
        for node in resolved.nodes[: ticket.MAX_SERVERS]
    ]


def issue_join_ticket(
    session: Session,
    settings: Settings,
    event: Event,
    user: User | None,
    role: ticket.Role,
    *,
    now: datetime,
    guest_name: str = "",
    cookies: Mapping[str, str] | None = None,
) -> bytes:
    """Make a credential for ``user`` (None: a guest called ``guest_name``) and its ticket.

    The credential row is added to the session (the caller commits, then
    answers the bytes). Raises EventError 409 ``no_tree`` when the event has
    no server tree, and ``too_many_tickets`` past ``MAX_EVENT_CREDENTIALS``.
    """
    servers = ticket_servers(session, event.id)
    issued = session.scalar(
        select(func.count()).select_from(TicketCredential).where(
            TicketCredential.event_id == event.id
        )
    )
    if (issued or 0) >= MAX_EVENT_CREDENTIALS:
        raise EventError(
            409, "too_many_tickets", f"this event has given out {MAX_EVENT_CREDENTIALS} tickets"
        )
    if user is None:
        username, display_name = guest_username(), guest_name.strip() or "Guest"
    else:
        username, display_name = user.username, user.label
    credential = ticket.Credential.new(
        username=username, display_name=display_name[:200], role=role
    )
    key = event_keys(session, event.id)[0]
    ca_pem = DevCA.ensure(settings.ca_dir).cert_file.read_text()
    issued_at = int(utc(now).timestamp())
    try:
        data = ticket.issue_ticket(
            signing_key=center_signing_key(settings),
            event_key=key,
            event_id=event.id,
            title=event.title,
            center_url=settings.center.public_url,
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
    session.add(
        TicketCredential(
            id=credential.credential_id,
            event_id=event.id,
            user_id=user.id if user is not None else None,
            username=credential.username,
            display_name=credential.display_name,
            role=str(role),
            secret_sha256=credential.secret_sha256,
            created_at=now,
        )
    )
    session.flush()
    return data
