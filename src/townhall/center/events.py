"""Scheduling and registration rules: who may see, create, change and join which event.

Input arrives as the pydantic models below (from the API's JSON or the
portal's forms) and is validated there; the functions here apply it to the
Center's tables and queue the invitation mails in the same transaction, so an
event change and its mails commit or fail together. iCalendar rules (RFC
5546): every change a recipient's calendar must see bumps ``sequence``.
"""

from __future__ import annotations

import enum
import functools
import unicodedata
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    any_,
    bindparam,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, joinedload

from townhall.center import invitations, mailer
from townhall.center.accounts import email_owner, user_by_name, valid_email
from townhall.center.tables import Event, EventRole, Registration, TicketCredential, User
from townhall.store.conventions import naive_utc, now_utc
from townhall.web.errors import WebError

Kind = Literal["meeting", "lecture", "webinar"]
Visibility = Literal["public", "private"]
AudioMode = Literal["voip", "phone", "both"]
MAX_INVITEES = 1000
MAX_ROLES = 100
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class EventError(WebError, ValueError):
    """A request the scheduling rules refuse (``WebError``: status, code, message)."""


def _printable(value: str) -> str:
    value = value.strip()
    if any(unicodedata.category(c) == "Cc" and c not in "\n\r\t" for c in value):
        raise ValueError("control characters are not allowed")
    return value


def _single_line(value: str) -> str:
    value = _printable(value)
    if "\n" in value or "\r" in value:
        raise ValueError("must be a single line")
    if not value:
        raise ValueError("must not be empty")
    return value


def _zone(value: str) -> str:
    if value:
        check_timezone(value)
    return value


def _in_range(value: datetime) -> datetime:
    if not EARLIEST <= value < LATEST:
        raise ValueError("must be between the years 2000 and 2100")
    return value.astimezone(UTC)


def _email(value: str) -> str:
    value = value.strip().lower()
    if not valid_email(value):
        raise ValueError(f"not an email address: {value[:80]!r}")
    return value


Title = Annotated[str, Field(max_length=200), AfterValidator(_single_line)]
LongText = Annotated[str, Field(max_length=10_000), AfterValidator(_printable)]
Zone = Annotated[str, Field(max_length=64), AfterValidator(_zone)]
Start = Annotated[AwareDatetime, AfterValidator(_in_range)]
Email = Annotated[str, Field(max_length=254), AfterValidator(_email)]
PersonRef = Annotated[str, Field(min_length=1, max_length=254)]


class EventIn(BaseModel):
    """An event as its organizer writes it."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    title: Title
    description: LongText = ""
    agenda: LongText = ""
    starts_at: Start
    timezone: Zone = ""
    duration_minutes: int = Field(ge=1, le=24 * 60)
    kind: Kind = "meeting"
    visibility: Visibility = "private"
    audio_mode: AudioMode = "voip"
    recording: bool = False
    moderators: list[PersonRef] = Field(default_factory=list, max_length=MAX_ROLES)
    presenters: list[PersonRef] = Field(default_factory=list, max_length=MAX_ROLES)
    invitees: list[Email] = Field(default_factory=list, max_length=MAX_INVITEES)


class EventPatch(BaseModel):
    """A change to an event: only the keys present are changed."""

    model_config = ConfigDict(extra="forbid", str_max_length=10_000)

    title: Title | None = None
    description: LongText | None = None
    agenda: LongText | None = None
    starts_at: Start | None = None
    timezone: Zone | None = None
    duration_minutes: int | None = Field(default=None, ge=1, le=24 * 60)
    kind: Kind | None = None
    visibility: Visibility | None = None
    audio_mode: AudioMode | None = None
    recording: bool | None = None
    moderators: list[PersonRef] | None = Field(default=None, max_length=MAX_ROLES)
    presenters: list[PersonRef] | None = Field(default=None, max_length=MAX_ROLES)
    invitees: list[Email] | None = Field(default=None, max_length=MAX_INVITEES)


class RegistrationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Email | None = None
    display_name: Annotated[str, Field(max_length=200), AfterValidator(_printable)] = ""


def check_timezone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"unknown time zone {name[:64]!r}") from error


@dataclass(frozen=True, slots=True)
class Links:
    """How the Center names its own pages in mails (it knows its public URL)."""

    base_url: str
    join_link: Callable[[Registration], str]

    def event_page(self, event: Event) -> str:
        return f"{self.base_url}/events/{event.id}"


# --- who may do what -------------------------------------------------------------


def role_in(event: Event, user: User | None, role: str) -> bool:
    return user is not None and any(r.user_id == user.id and r.role == role for r in event.roles)


def can_manage(event: Event, user: User | None) -> bool:
    if user is None:
        return False
    return (
        user.role == "admin" or event.organizer_id == user.id or role_in(event, user, "moderator")
    )


def can_schedule(user: User | None) -> bool:
    return user is not None and user.role in ("admin", "organizer")


@functools.cache
def _registration_statement(by_email: bool) -> Select[Any]:
    """``registration_of``'s statement, built once per shape: building it cost as much
    Python as running it (values are bound: ``event_id``, ``user_id``, ``email``)."""
    conditions = [Registration.user_id == bindparam("user_id")]
    if by_email:
        conditions.append(Registration.email == bindparam("email"))
    return (
        select(Registration)
        .where(Registration.event_id == bindparam("event_id"), or_(*conditions))
        .order_by(Registration.status)  # "registered" before "revoked"
        .limit(1)
    )


def registration_of(session: Session, event: Event, user: User) -> Registration | None:
    """The user's registration: theirs by account, or sent to their email if it is vouched for."""
    by_email = bool(user.email and user.email_verified)
    values: dict[str, object] = {"event_id": event.id, "user_id": user.id}
    if by_email:
        values["email"] = user.email
    found: Registration | None = session.scalar(_registration_statement(by_email), values)
    return found


class NotLookedUp(enum.Enum):
    """A registration the caller has not looked up (``None`` says the user has none)."""

    LOOK_UP = "look up"


LOOK_UP: Final = NotLookedUp.LOOK_UP
# The user's registration as ``registration_of`` gave it in this request, or LOOK_UP.
KnownRegistration = Registration | None | NotLookedUp


def known_registration(
    session: Session, event: Event, user: User, known: KnownRegistration
) -> Registration | None:
    """``known`` when the caller looked it up in this request, else ``registration_of``.

    Nothing is kept across requests: a registration revoked a moment ago is
    refused on the next request (one lookup per request, passed down).
    """
    if known is LOOK_UP:
        return registration_of(session, event, user)
    return known


def can_view(session: Session, event: Event, user: User | None) -> bool:
    if event.visibility == "public" and user is not None:
        return True
    if user is None:
        return False
    if can_manage(event, user) or role_in(event, user, "presenter"):
        return True
    registration = registration_of(session, event, user)
    return registration is not None and registration.status == "registered"


def visible_events(user: User) -> Select[Any]:  # Select's parameters differ in 2.0 and 2.1
    """The events ``user`` may see: ``can_view``'s rule as SQL."""
    by_email = bool(user.email and user.email_verified)
    statement = _visible(user.role == "admin", by_email)
    return statement.params(user_id=user.id, email=user.email if by_email else None)


def _visible(admin: bool, by_email: bool) -> Select[Any]:
    """``visible_events`` with the user as bound parameters ``user_id`` and, when
    ``by_email``, ``email`` (the catalog builds its statements once, see ``catalog``)."""
    query = select(EVENTS)
    if admin:
        return query
    # By account, or sent to the email if it is vouched for (as ``registration_of``). No
    # never-matching stand-in for the email: PostgreSQL refuses NUL in text ("\x00" was).
    by = [REGISTRATIONS.c.user_id == bindparam("user_id")]
    if by_email:
        by.append(REGISTRATIONS.c.email == bindparam("email"))
    mine = select(REGISTRATIONS.c.event_id).where(REGISTRATIONS.c.status == "registered", or_(*by))
    roles = select(ROLES.c.event_id).where(ROLES.c.user_id == bindparam("user_id"))
    return query.where(
        or_(
            EVENTS.c.visibility == "public",
            EVENTS.c.organizer_id == bindparam("user_id"),
            EVENTS.c.id.in_(mine),
            EVENTS.c.id.in_(roles),
        )
    )


# The event with its organizer and its roles (and their users) in one statement, built
# once: ``session.get`` builds its query on each call and loads the roles with a second
# statement, which cost 0.57 ms a load against 0.21 (bench/README.md, sixth pass). The roles
# come in no defined order; whoever shows their names orders them (``people_order``).
EVENT_BY_ID = (
    select(Event).options(joinedload(Event.roles)).where(Event.id == bindparam("event_id"))
)


def load_event(session: Session, event_id: int) -> Event | None:
    """The event ``event_id`` with its people loaded, or None."""
    found: Event | None = (
        session.execute(EVENT_BY_ID, {"event_id": event_id}).unique().scalar_one_or_none()
    )
    return found


def people_order(names: Iterable[str]) -> tuple[str, ...]:
    """Moderators' or presenters' names as every answer lists them: by name, ignoring case,
    in Python so that SQLite and PostgreSQL (whose collations differ) agree."""
    listed = tuple(names)
    if len(listed) < 2:  # most events: one organizer, no presenter (the catalog's 50 a page)
        return listed
    return tuple(sorted(listed, key=_name_key))


def _name_key(name: str) -> tuple[str, str]:
    return name.casefold(), name


def people_of(event: Event, role: str) -> list[User]:
    """The event's moderators or presenters (``role``), in ``people_order``."""
    by_name = {r.user.username: r.user for r in event.roles if r.role == role}
    return [by_name[name] for name in people_order(by_name)]


def get_visible(session: Session, event_id: int, user: User | None) -> Event:
    return visible(session, load_event(session, event_id), event_id, user)


def visible(session: Session, event: Event | None, event_id: int, user: User | None) -> Event:
    """``event``, the event ``event_id`` as loaded (None: there is none), if ``user`` may
    see it, else EventError 404."""
    if event is None or not can_view(session, event, user):
        # Private events a user may not see do not exist for that user.
        raise EventError(404, "event_not_found", f"no event {event_id}")
    return event


def get_managed(session: Session, event_id: int, user: User) -> Event:
    event = get_visible(session, event_id, user)
    if not can_manage(event, user):
        raise EventError(403, "not_event_manager", "only the organizer or a moderator may do this")
    return event


# --- catalog ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogQuery:
    text: str = ""
    when: Literal["upcoming", "past", "all"] = "upcoming"
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    include_cancelled: bool = False
    limit: int = 50
    offset: int = 0


MAX_DURATION = timedelta(minutes=24 * 60)

# Core tables, not ORM entities: the catalog reads plain rows (see ``Listed``).
EVENTS = Event.__table__
ROLES = EventRole.__table__
REGISTRATIONS = Registration.__table__
USERS = User.__table__
_LISTED = (
    EVENTS.c.id,
    EVENTS.c.uid,
    EVENTS.c.title,
    EVENTS.c.description,
    EVENTS.c.agenda,
    EVENTS.c.starts_at,
    EVENTS.c.ends_at,
    EVENTS.c.timezone,
    EVENTS.c.duration_minutes,
    EVENTS.c.kind,
    EVENTS.c.visibility,
    EVENTS.c.audio_mode,
    EVENTS.c.recording,
    EVENTS.c.status,
    EVENTS.c.sequence,
)


@dataclass(frozen=True, slots=True)
class Listed:
    """An event as the catalog shows it: plain values, read without the ORM.

    The catalog is the Center's hottest query; building ORM objects and
    loading their relationships cost more than the SQL itself (bench/center.py).
    """

    id: int
    uid: str
    title: str
    description: str
    agenda: str
    starts_at: datetime
    ends_at: datetime
    timezone: str
    duration_minutes: int
    kind: str
    visibility: str
    audio_mode: str
    recording: bool
    status: str
    sequence: int
    organizer: str
    moderators: tuple[str, ...]
    presenters: tuple[str, ...]

    @classmethod
    def of(cls, event: Event) -> Listed:
        values = {column.key: getattr(event, column.key) for column in _LISTED}
        return cls(
            **values,
            organizer=event.organizer.username,
            moderators=tuple(u.username for u in people_of(event, "moderator")),
            presenters=tuple(u.username for u in people_of(event, "presenter")),
        )


@functools.cache
def _catalog_statement(
    admin: bool,
    by_email: bool,
    when: str,
    after: bool,
    before: bool,
    cancelled: bool,
    text: bool,
    sqlite: bool,
) -> Select[Any]:
    """The catalog's page query for one shape of request, built once: every value is a bound
    parameter, so a request only binds values (building and hashing a statement cost more
    than running it)."""
    statement = _visible(admin, by_email)
    if when == "upcoming":
        # An event still running is "upcoming" for whoever wants to join it. The bound on
        # starts_at is implied (no event lasts longer) but lets the index on it be used.
        statement = statement.where(
            EVENTS.c.ends_at > bindparam("now"), EVENTS.c.starts_at > bindparam("earliest")
        )
    elif when == "past":
        statement = statement.where(
            EVENTS.c.ends_at <= bindparam("now"), EVENTS.c.starts_at <= bindparam("now")
        )
    if after:
        statement = statement.where(EVENTS.c.starts_at >= bindparam("after"))
    if before:
        statement = statement.where(EVENTS.c.starts_at < bindparam("before"))
    statement = statement.where(
        EVENTS.c.status.in_(("scheduled", "cancelled") if cancelled else ("scheduled",))
    )
    if text:
        pattern: BindParameter[str] = bindparam("pattern", type_=String())
        if sqlite:
            # SQLite's LIKE already ignores the case of ASCII letters, and only of those,
            # as its lower() does: what ILIKE renders there (lower(a) LIKE lower(b))
            # matches the same rows, at the cost of lowering every title and description.
            title, description = (
                EVENTS.c.title.like(pattern, escape="\\"),
                EVENTS.c.description.like(pattern, escape="\\"),
            )
        else:
            title, description = (
                EVENTS.c.title.ilike(pattern, escape="\\"),
                EVENTS.c.description.ilike(pattern, escape="\\"),
            )
        statement = statement.where(or_(title, description))
    order = EVENTS.c.starts_at.desc() if when == "past" else EVENTS.c.starts_at.asc()
    return (
        statement.with_only_columns(*_LISTED, USERS.c.username)
        .join(USERS, USERS.c.id == EVENTS.c.organizer_id)
        .order_by(order, EVENTS.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


# The moderators and presenters of a page's events, the ids given as one text value: an
# array literal cast on PostgreSQL, a JSON array read by ``json_each`` on SQLite. The
# statement's text is then the same for every page, and PostgreSQL prepares it once; an
# expanding IN renders a parameter per event, with its cast, on every call: a sixth of the
# catalog's CPU in the web process on PostgreSQL (bench/README.md, eighth pass). Text, not
# a list, because psycopg dumps a list of ints element by element in Python.
_PEOPLE = select(ROLES.c.event_id, ROLES.c.role, USERS.c.username).join(
    USERS, USERS.c.id == ROLES.c.user_id
)
# On PostgreSQL each name is looked up by its primary key, not joined: the planner joined
# by hashing the whole users table on every call (1,000 users: 0.43 ms a page against
# 0.18, and growing with the accounts). SQLite's join is already a lookup per row, 2 %
# cheaper than the subquery.
_PEOPLE_BY_KEY = select(
    ROLES.c.event_id,
    ROLES.c.role,
    select(USERS.c.username).where(USERS.c.id == ROLES.c.user_id).scalar_subquery(),
)
_IDS_TEXT = bindparam("ids", type_=String)
_CATALOG_PEOPLE = {
    "postgresql": _PEOPLE_BY_KEY.where(ROLES.c.event_id == any_(cast(_IDS_TEXT, ARRAY(Integer)))),
    "sqlite": _PEOPLE.where(
        ROLES.c.event_id.in_(select(func.json_each(_IDS_TEXT).table_valued("value").c.value))
    ),
}
_CATALOG_PEOPLE_ELSEWHERE = _PEOPLE.where(ROLES.c.event_id.in_(bindparam("ids", expanding=True)))


def _people_of_page(connection: Connection, ids: list[int]) -> Sequence[Any]:
    """(event id, role, username) of every moderator and presenter of the events ``ids``."""
    dialect = connection.dialect.name
    statement = _CATALOG_PEOPLE.get(dialect, _CATALOG_PEOPLE_ELSEWHERE)
    value: object = ids
    if dialect in _CATALOG_PEOPLE:  # "[1,2]" for json_each, "{1,2}" for the array
        listed = ",".join(map(str, ids))
        value = f"[{listed}]" if dialect == "sqlite" else f"{{{listed}}}"
    return connection.execute(statement, {"ids": value}).all()


def catalog(session: Session, user: User, query: CatalogQuery) -> tuple[list[Listed], bool]:
    """One page of the catalog, and whether more follow.

    There is no total: counting every match of a large catalog costs more than
    the page itself, and "is there a next page" is all paging needs.
    """
    by_email = bool(user.email and user.email_verified)
    statement = _catalog_statement(
        user.role == "admin",
        by_email,
        query.when,
        query.starts_after is not None,
        query.starts_before is not None,
        query.include_cancelled,
        bool(query.text),
        session.get_bind().dialect.name == "sqlite",
    )
    now = now_utc()
    params: dict[str, object] = {
        "user_id": user.id,
        "now": now,
        "earliest": now - MAX_DURATION,
        "limit": query.limit + 1,
        "offset": query.offset,
    }
    if by_email:
        params["email"] = user.email
    if query.starts_after is not None:
        params["after"] = naive_utc(query.starts_after)
    if query.starts_before is not None:
        params["before"] = naive_utc(query.starts_before)
    if query.text:
        escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        params["pattern"] = f"%{escaped}%"
    # The Core connection, not the ORM session: these are plain rows. Flushed first, as the
    # session's own execute would, so that pending changes are seen.
    session.flush()
    connection = session.connection()
    rows = connection.execute(statement, params).all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    found: dict[tuple[int, str], list[str]] = {}
    if rows:
        for event_id, role, username in _people_of_page(connection, [row.id for row in rows]):
            found.setdefault((event_id, role), []).append(username)
    people = {key: people_order(names) for key, names in found.items()}
    # Positional: the row's columns are Listed's first fields, in order (_LISTED), then the
    # organizer's name.
    listed = [
        Listed(
            *row,  # type: ignore[call-arg]  # a Row's length is not known to mypy
            people.get((row[0], "moderator"), ()),
            people.get((row[0], "presenter"), ()),
        )
        for row in rows
    ]
    return listed, more


# --- scheduling --------------------------------------------------------------------


def _resolve_people(session: Session, refs: Iterable[str], field: str) -> list[User]:
    people: list[User] = []
    for ref in dict.fromkeys(r.strip() for r in refs):
        user = email_owner(session, ref) if "@" in ref else None
        user = user or user_by_name(session, ref)
        if user is None or not user.active:
            raise EventError(422, "unknown_user", f"{field}: no user {ref[:80]!r}")
        people.append(user)
    return people


def _set_roles(session: Session, event: Event, role: str, people: list[User]) -> None:
    event.roles[:] = [r for r in event.roles if r.role != role]
    for person in people:
        event.roles.append(EventRole(user_id=person.id, role=role, user=person))


def _ensure_organizer_moderates(event: Event, organizer: User) -> None:
    if not role_in(event, organizer, "moderator"):
        event.roles.append(EventRole(user_id=organizer.id, role="moderator", user=organizer))


def _mail(
    session: Session,
    event: Event,
    registrations: Iterable[Registration],
    purpose: str,
    links: Links,
    sender: str,
) -> None:
    organizer = event.organizer
    for registration in registrations:
        message = invitations.invitation_message(
            event=event,
            recipient_email=registration.email,
            recipient_name=registration.display_name,
            purpose=purpose,  # type: ignore[arg-type]
            join_url=links.join_link(registration),
            event_url=links.event_page(event),
            sender=sender,
            organizer_email=organizer.email or "",
            organizer_name=organizer.label,
            timezone=event.timezone,
        )
        mailer.enqueue(
            session, event=event, recipient=registration.email, purpose=purpose, message=message
        )


def _invite(session: Session, event: Event, emails: Iterable[str]) -> list[Registration]:
    """Register each email as invited; returns the registrations that are new or revived."""
    existing = {
        r.email: r
        for r in session.scalars(select(Registration).where(Registration.event_id == event.id))
    }
    fresh: list[Registration] = []
    for email in dict.fromkeys(emails):
        registration = existing.get(email)
        if registration is not None:
            if registration.status == "revoked":
                registration.status, registration.revoked_at = "registered", None
                fresh.append(registration)
            continue
        user = email_owner(session, email)
        registration = Registration(
            event_id=event.id,
            user_id=user.id if user else None,
            email=email,
            display_name=user.label if user else "",
            source="invited",
        )
        session.add(registration)
        fresh.append(registration)
    session.flush()
    return fresh


def active_registrations(session: Session, event: Event) -> list[Registration]:
    return list(
        session.scalars(
            select(Registration)
            .where(Registration.event_id == event.id, Registration.status == "registered")
            .order_by(Registration.id)
        )
    )


def create_event(
    session: Session, organizer: User, data: EventIn, links: Links, sender: str, default_zone: str
) -> Event:
    if not can_schedule(organizer):
        raise EventError(403, "not_organizer", "only organizers and admins may schedule events")
    moderators = _resolve_people(session, data.moderators, "moderators")
    presenters = _resolve_people(session, data.presenters, "presenters")
    event = Event(
        uid=uuid.uuid4().hex,
        title=data.title,
        description=data.description,
        agenda=data.agenda,
        starts_at=naive_utc(data.starts_at),
        ends_at=naive_utc(data.starts_at + timedelta(minutes=data.duration_minutes)),
        timezone=data.timezone or organizer.timezone or default_zone,
        duration_minutes=data.duration_minutes,
        kind=data.kind,
        visibility=data.visibility,
        audio_mode=data.audio_mode,
        recording=data.recording,
        organizer_id=organizer.id,
        organizer=organizer,
        sequence=0,
    )
    session.add(event)
    _set_roles(session, event, "moderator", moderators)
    _set_roles(session, event, "presenter", presenters)
    _ensure_organizer_moderates(event, organizer)
    session.flush()
    _mail(session, event, _invite(session, event, data.invitees), "invite", links, sender)
    return event


# Fields whose change a calendar must see (RFC 5546 §2.1.4: bump SEQUENCE).
_CALENDAR_FIELDS = ("title", "description", "starts_at", "duration_minutes", "timezone")


def update_event(
    session: Session, event: Event, data: EventPatch, links: Links, sender: str
) -> Event:
    if event.status == "cancelled":
        raise EventError(409, "event_cancelled", "a cancelled event cannot be changed")
    changes = data.model_dump(exclude_unset=True)
    missing = [key for key, value in changes.items() if value is None]
    if missing:
        raise EventError(422, "invalid_input", f"{', '.join(missing)}: null is not allowed")
    calendar_changed = False
    for key in (
        "title",
        "description",
        "agenda",
        "timezone",
        "duration_minutes",
        "kind",
        "visibility",
        "audio_mode",
        "recording",
    ):
        if key in changes and getattr(event, key) != changes[key]:
            setattr(event, key, changes[key])
            calendar_changed |= key in _CALENDAR_FIELDS
    if "starts_at" in changes:
        start = naive_utc(changes["starts_at"])
        if start != event.starts_at:
            event.starts_at = start
            calendar_changed = True
    if data.moderators is not None:
        _set_roles(
            session, event, "moderator", _resolve_people(session, data.moderators, "moderators")
        )
        _ensure_organizer_moderates(event, event.organizer)
    if data.presenters is not None:
        _set_roles(
            session, event, "presenter", _resolve_people(session, data.presenters, "presenters")
        )
    removed: list[Registration] = []
    fresh: list[Registration] = []
    if data.invitees is not None:
        wanted = set(data.invitees)
        for registration in active_registrations(session, event):
            if registration.source == "invited" and registration.email not in wanted:
                removed.append(registration)
        fresh = _invite(session, event, data.invitees)
    event.ends_at = event.starts_at + timedelta(minutes=event.duration_minutes)
    event.updated_at = now_utc()
    if calendar_changed or removed:
        event.sequence += 1
    if removed:
        _mail(session, event, removed, "cancel", links, sender)
        for registration in removed:
            registration.status, registration.revoked_at = "revoked", now_utc()
            revoke_credentials(session, registration)
    if calendar_changed:
        fresh_ids = {r.id for r in fresh}
        others = [r for r in active_registrations(session, event) if r.id not in fresh_ids]
        _mail(session, event, others, "update", links, sender)
    _mail(session, event, fresh, "invite", links, sender)
    session.flush()
    revoke_stale_credentials(session, event)
    return event


def cancel_event(session: Session, event: Event, links: Links, sender: str) -> Event:
    if event.status == "cancelled":
        return event
    event.status = "cancelled"
    event.sequence += 1
    event.updated_at = now_utc()
    _mail(session, event, active_registrations(session, event), "cancel", links, sender)
    session.flush()
    return event


# --- registration ------------------------------------------------------------------


def register(
    session: Session, event: Event, user: User, data: RegistrationIn, links: Links, sender: str
) -> Registration:
    """Register someone: a manager registers any email, a user registers themself."""
    if event.status == "cancelled":
        raise EventError(409, "event_cancelled", "the event is cancelled")
    if data.email is not None and data.email != (user.email or ""):
        if not can_manage(event, user):
            raise EventError(403, "not_event_manager", "only managers may register others")
        fresh = _invite(session, event, [data.email])
        if data.display_name:
            for registration in fresh:
                registration.display_name = data.display_name
        _mail(session, event, fresh, "invite", links, sender)
        return session.scalars(
            select(Registration).where(
                Registration.event_id == event.id, Registration.email == data.email
            )
        ).one()
    if event.visibility != "public" and not can_view(session, event, user):
        raise EventError(404, "event_not_found", f"no event {event.id}")
    existing = registration_of(session, event, user)
    if existing is not None:
        if existing.status == "revoked":
            raise EventError(403, "registration_revoked", "your registration was revoked")
        return existing
    # An address nobody vouched for must not hold the place of its owner's invitation.
    vouched = bool(user.email) and user.email_verified
    registration = Registration(
        event_id=event.id,
        user_id=user.id,
        email=user.email if vouched and user.email else f"{user.username}@users.invalid",
        display_name=user.label,
        source="self",
    )
    session.add(registration)
    session.flush()
    if vouched:
        _mail(session, event, [registration], "invite", links, sender)
    return registration


def revoke_registration(
    session: Session, event: Event, user: User, registration_id: int, links: Links, sender: str
) -> Registration:
    registration = session.get(Registration, registration_id)
    if registration is None or registration.event_id != event.id:
        raise EventError(404, "registration_not_found", f"no registration {registration_id}")
    # The same rule as ``registration_of``: an invitation by email is the user's own.
    own = registration.user_id == user.id or (
        registration.user_id is None
        and bool(user.email)
        and user.email_verified
        and registration.email == user.email
    )
    if not (own or can_manage(event, user)):
        raise EventError(403, "not_event_manager", "only managers may revoke registrations")
    if registration.status != "revoked":
        _mail(session, event, [registration], "cancel", links, sender)
        registration.status, registration.revoked_at = "revoked", now_utc()
        revoke_credentials(session, registration)
        session.flush()
    return registration


def revoke_credentials(session: Session, registration: Registration) -> None:
    """Revoke the join-ticket credentials of a registration's user for its event.

    The user is the registration's account, or the account with its email (the
    rule of ``registration_of``). The Controller hands the revoked ids to the
    live servers (``live.due_events``), which then refuse them.
    """
    by_email = select(User.id).where(User.email == registration.email, User.email_verified)
    owners: list[ColumnElement[bool]] = [
        TicketCredential.user_id.in_(by_email),
        TicketCredential.registration_id == registration.id,
    ]
    if registration.user_id is not None:
        owners.append(TicketCredential.user_id == registration.user_id)
    session.execute(
        update(TicketCredential)
        .where(
            TicketCredential.event_id == registration.event_id,
            TicketCredential.revoked_at.is_(None),
            or_(*owners),
        )
        .values(revoked_at=now_utc())
        .execution_options(synchronize_session=False)
    )


def role_now(session: Session, event: Event, credential: TicketCredential) -> str | None:
    """The role the holder of ``credential`` would get a ticket in today; None: none.

    The rule of ``live.join_role``, for whoever the credential was issued to:
    an account, a guest by a personal link, or an anonymous guest.
    """
    if credential.user_id is not None:
        user = session.get(User, credential.user_id)
        if user is None or not user.active:
            return None
        if can_manage(event, user):
            return "moderator"
        if role_in(event, user, "presenter"):
            return "presenter"
        registration = registration_of(session, event, user)
        if registration is not None:
            return "participant" if registration.status == "registered" else None
        return "participant" if event.visibility == "public" else None
    if credential.registration_id is not None:
        registration = session.get(Registration, credential.registration_id)
        registered = registration is not None and registration.status == "registered"
        return "participant" if registered else None
    return "participant" if event.visibility == "public" else None


def revoke_stale_credentials(session: Session, event: Event) -> int:
    """Revoke the event's credentials that its present state no longer allows; how many.

    A former moderator's credential still says ``moderator``, a guest's
    outlives a switch to private: each such one is revoked (its holder asks
    for a new ticket, in the role they have now), and the Controller's next
    assignment makes the live servers close the connections holding them.
    """
    now = now_utc()
    live = session.scalars(
        select(TicketCredential).where(
            TicketCredential.event_id == event.id, TicketCredential.revoked_at.is_(None)
        )
    ).all()
    revoked = 0
    for credential in live:
        if role_now(session, event, credential) != credential.role:
            credential.revoked_at = now
            revoked += 1
    if revoked:
        session.flush()
    return revoked


def registrations(session: Session, event: Event) -> list[Registration]:
    return list(
        session.scalars(
            select(Registration).where(Registration.event_id == event.id).order_by(Registration.id)
        )
    )


# --- presentation -------------------------------------------------------------------


def _utc_text(value: datetime) -> str:
    """A stored naive-UTC time in RFC 3339 with ``Z`` (what ``utc(value).isoformat()`` says,
    without the ``+00:00`` to replace: the catalog formats a hundred of these a request)."""
    return (value if value.tzinfo is None else value.replace(tzinfo=None)).isoformat() + "Z"


def event_json(event: Event | Listed) -> dict[str, object]:
    listed = event if isinstance(event, Listed) else Listed.of(event)
    return {
        "id": listed.id,
        "uid": listed.uid,
        "title": listed.title,
        "description": listed.description,
        "agenda": listed.agenda,
        "starts_at": _utc_text(listed.starts_at),
        "ends_at": _utc_text(listed.ends_at),
        "timezone": listed.timezone,
        "duration_minutes": listed.duration_minutes,
        "kind": listed.kind,
        "visibility": listed.visibility,
        "audio_mode": listed.audio_mode,
        "recording": listed.recording,
        "status": listed.status,
        "sequence": listed.sequence,
        "organizer": listed.organizer,
        "moderators": list(listed.moderators),
        "presenters": list(listed.presenters),
    }
