"""The REST API under ``/api/v1``: events, registrations, join tickets, the current user, tokens.

Every answer is JSON; every error is ``{"error": {"code", "message"}}`` with a
4xx status that says whose fault it is (``townhall.web.errors``). Path
and query values are bounded here, bodies by the models in ``events``; no
input reaches the database unchecked, so bad input never becomes a 5xx.
"""

from __future__ import annotations

import base64
import re
from datetime import UTC, date, datetime, time
from typing import Annotated, Literal

import msgspec
from fastapi import APIRouter, Depends, Path, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import accounts, events, live, mailer
from townhall.center.auth import client_address, context_of, identify
from townhall.center.events import CatalogQuery, EventError, EventIn, EventPatch, RegistrationIn
from townhall.center.metrics import count_ticket
from townhall.center.tables import ApiToken, Event, MailJob, Registration, User
from townhall.store.conventions import now_utc, utc
from townhall.web.deps import (
    DB,
    MAX_ID,
    ItemId,
    api_viewer,
    check_api_write,
    in_one_hop,
    query_of,
    query_parameters,
)
from townhall.web.errors import ERRORS
from townhall.wire.names import NOT_IN_LABELS

EventId = Annotated[int, Path(ge=1, le=MAX_ID)]


def api_user(request: Request, session: DB) -> User:
    """The signed-in caller as the Center's own ``User`` (``web.deps.api_viewer``)."""
    user = api_viewer(request, session).user
    if not isinstance(user, User):
        raise TypeError("the web shell's identify answered someone not a Center user")
    return user


Me = Annotated[User, Depends(api_user)]

router = APIRouter(prefix="/api/v1", tags=["api"])


# --- response models (they are also the OpenAPI document) ------------------------------


class MeOut(BaseModel):
    username: str
    email: str | None
    display_name: str
    role: str
    timezone: str
    signed_in_via: str


class EventOut(BaseModel):
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
    moderators: list[str]
    presenters: list[str]
    invitees: list[str] | None = Field(default=None, description="only shown to managers")
    my_registration: str | None = Field(default=None, description="registered, revoked or none")


class LiveServerOut(BaseModel):
    name: str
    role: str = Field(description="main or child")
    parent: str | None
    zone: str
    address: str
    connected: bool = Field(description="has a control link to the Controller now")
    upstream: str = Field(description="none (main), connecting, handshake, syncing, up, waiting")
    participants: int


class LiveOut(BaseModel):
    state: str = Field(description="scheduled, preparing, ready, degraded or ended")
    servers: list[LiveServerOut]


class EventDetail(EventOut):
    """One event, with the state of its server tree (the catalog leaves that out)."""

    live: LiveOut


class EventList(BaseModel):
    items: list[EventOut]
    has_more: bool = Field(description="true when another page follows (ask with offset)")
    limit: int
    offset: int


class RegistrationOut(BaseModel):
    id: int
    email: str
    display_name: str
    username: str | None
    source: str
    status: str
    created_at: datetime


class MailOut(BaseModel):
    id: int
    recipient: str
    purpose: str
    status: str
    attempts: int
    last_error: str
    next_attempt_at: datetime
    sent_at: datetime | None


class DialInOut(BaseModel):
    numbers: list[str]
    access_code: str
    audio_mode: str


# Control characters, lone surrogates and bidirectional overrides: a name is shown to others.
_NOT_IN_NAMES = re.compile(f"[{NOT_IN_LABELS}]")


def _guest_name(value: str) -> str:
    value = value.strip()
    if _NOT_IN_NAMES.search(value):
        raise ValueError("control characters are not allowed")
    return value


class TicketIn(BaseModel):
    """Optional: what a guest (not signed in) wants to be called; others keep their own name."""

    model_config = ConfigDict(extra="forbid")
    display_name: Annotated[
        str, Field(max_length=live.GUEST_NAME_MAX), AfterValidator(_guest_name)
    ] = ""


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=100)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked: bool


class NewTokenOut(TokenOut):
    token: str = Field(description="shown once; only its digest is kept")


def live_out(session: Session, event: Event, known: live.LiveView | None = None) -> LiveOut:
    """The event's live state as the API shows it; ``known``: as the caller loaded it."""
    state, servers = known if known is not None else live.live_state(session, event.id)
    return LiveOut(
        state=state,
        servers=[
            LiveServerOut(
                name=server.name,
                role=server.role,
                parent=server.parent,
                zone=server.zone,
                address=server.address,
                connected=server.connected,
                upstream=server.upstream,
                participants=server.participants,
            )
            for server in servers
        ],
    )


def _event_out(
    session: Session, event: Event, user: User, live_view: live.LiveView | None = None
) -> EventDetail:
    body = events.event_json(event)
    if events.can_manage(event, user):
        body["invitees"] = [
            r.email for r in events.active_registrations(session, event) if r.source == "invited"
        ]
    registration = events.registration_of(session, event, user)
    body["my_registration"] = registration.status if registration else None
    body["live"] = live_out(session, event, live_view)
    return EventDetail.model_validate(body)


def ticket_response(data: bytes, event: Event) -> Response:
    """A join ticket as a download that no cache keeps (docs/tickets.md)."""
    return Response(
        data,
        media_type=ticket.MEDIA_TYPE,
        headers={
            "content-disposition": (
                f'attachment; filename="event-{event.id}{ticket.FILE_EXTENSION}"'
            ),
            "cache-control": "no-store",
        },
    )


def join_ticket(
    request: Request,
    session: Session,
    event: Event,
    user: User | None,
    guest_name: str = "",
    registration: Registration | None = None,
) -> Response:
    """Check who may join (``live.join_role``, then the event's state), issue, commit, answer.

    ``registration``: a guest by their personal link (``user`` is then None).
    """
    try:
        ctx = context_of(request)
        # The user's registration, looked up once for every rule below (in this request only).
        own = events.registration_of(session, event, user) if user is not None else None
        if user is None and registration is not None:
            role = ticket.Role.PARTICIPANT  # the link was checked, and the registration is live
        else:
            role = live.join_role(session, event, user, own)
        now = now_utc()
        live.check_joinable(event, now)
        # Only a trusted proxy's cookies: anyone else could plant a cookie that the
        # participant application would then replay to the Center.
        peer = request.client.host if request.client else None
        cookies = live.ticket_cookies(ctx.sso.captured_cookies(peer, request.scope["headers"]))
        data = live.issue_join_ticket(
            session,
            ctx.settings,
            event,
            user,
            role,
            trees=ctx.trees,
            now=now,
            guest_name=guest_name,
            cookies=cookies,
            registration=registration,
            client_address=client_address(request),
            keys=ctx.keys,
            own_registration=own,
        )
    except EventError:
        count_ticket(request, "refused")
        raise
    session.commit()
    count_ticket(request, "issued")
    return ticket_response(data, event)


def _registration_out(registration: Registration) -> RegistrationOut:
    return RegistrationOut(
        id=registration.id,
        email=registration.email,
        display_name=registration.display_name,
        username=registration.user.username if registration.user else None,
        source=registration.source,
        status=registration.status,
        created_at=utc(registration.created_at),
    )


def _token_out(token: ApiToken) -> TokenOut:
    return TokenOut(
        id=token.id,
        name=token.name,
        prefix=token.prefix,
        created_at=utc(token.created_at),
        last_used_at=utc(token.last_used_at) if token.last_used_at else None,
        revoked=token.revoked_at is not None,
    )


def parse_bound(value: str | None, name: str, end_of_day: bool = False) -> datetime | None:
    """A date filter: an RFC 3339 time with offset, or a day (taken in UTC)."""
    if not value:
        return None
    if len(value) > 40:
        raise EventError(422, "invalid_input", f"{name}: too long")
    try:
        if len(value) == 10:
            day = date.fromisoformat(value)
            moment = datetime.combine(day, time.max if end_of_day else time.min, tzinfo=UTC)
        else:
            moment = datetime.fromisoformat(value)
    except ValueError as error:
        raise EventError(422, "invalid_input", f"{name}: not a date or RFC 3339 time") from error
    if moment.tzinfo is None:
        raise EventError(422, "invalid_input", f"{name}: a time needs an offset, like Z or +02:00")
    if not events.EARLIEST <= moment < events.LATEST:
        raise EventError(422, "invalid_input", f"{name}: out of range")
    return moment


def dialin_code(request: Request, event: Event) -> str:
    """An 8-digit access code for the event, derived so that nothing extra is stored."""
    return str(int(context_of(request).secret.sign("dialin", event.uid), 16) % 10**8).zfill(8)


# --- routes -----------------------------------------------------------------------------


@router.get("/me", response_model=MeOut, responses=ERRORS)
def me(request: Request, user: Me) -> MeOut:
    return MeOut(
        username=user.username,
        email=user.email,
        display_name=user.display_name,
        role=user.role,
        timezone=user.timezone or context_of(request).settings.center.default_timezone,
        signed_in_via=request.state.viewer.via,
    )


_JSON = msgspec.json.Encoder()
_CATALOG_EXTRAS: dict[str, object] = {"invitees": None, "my_registration": None}


def json_response(model: BaseModel) -> Response:
    """A response model as JSON, encoded here: FastAPI would validate it again, on a
    thread-pool hop of its own for a sync route, before encoding the same bytes."""
    return Response(model.__pydantic_serializer__.to_json(model), media_type="application/json")


class CatalogParams(BaseModel):
    """The catalog's query parameters (``query_of``)."""

    model_config = ConfigDict(frozen=True)

    q: str = Field("", max_length=200)
    when: Literal["upcoming", "past", "all"] = "upcoming"
    starts_after: str | None = Field(None, alias="from", max_length=40)
    starts_before: str | None = Field(None, alias="to", max_length=40)
    include_cancelled: bool = False
    limit: int = Field(50, ge=1, le=200)
    offset: int = Field(0, ge=0, le=1_000_000)


@router.get(
    "/events",
    response_model=EventList,
    responses=ERRORS,
    openapi_extra=query_parameters(CatalogParams),
)
async def list_events(request: Request) -> Response:
    params = query_of(request, CatalogParams)
    limit, offset = params.limit, params.offset

    def answer(session: Session) -> Response:
        user = api_user(request, session)
        query = CatalogQuery(
            text=params.q.strip(),
            when=params.when,
            starts_after=parse_bound(params.starts_after, "from"),
            starts_before=parse_bound(params.starts_before, "to", end_of_day=True),
            include_cancelled=params.include_cancelled,
            limit=limit,
            offset=offset,
        )
        rows, more = events.catalog(session, user, query)
        # Encoded here rather than by FastAPI from an EventList (which stays the documented
        # model): validating and dumping 50 models, on one more thread-pool hop, cost more
        # than the query. The keys and values are EventOut's, ``invitees`` and
        # ``my_registration`` included (null in the catalog).
        items = [{**events.event_json(e), **_CATALOG_EXTRAS} for e in rows]
        body = {"items": items, "has_more": more, "limit": limit, "offset": offset}
        return Response(_JSON.encode(body), media_type="application/json")

    return await in_one_hop(request, answer)


@router.post("/events", status_code=201, response_model=EventDetail, responses=ERRORS)
def create_event(request: Request, session: DB, user: Me, body: EventIn) -> EventDetail:
    ctx = context_of(request)
    event = events.create_event(
        session, user, body, ctx.links, ctx.sender, ctx.settings.center.default_timezone
    )
    session.commit()
    return _event_out(session, event, user)


@router.get("/events/{event_id}", response_model=EventDetail, responses=ERRORS)
async def get_event(request: Request, event_id: EventId) -> Response:
    def answer(session: Session) -> Response:
        user = api_user(request, session)
        event, live_view = live.visible_event_and_live_state(session, event_id, user)
        return json_response(_event_out(session, event, user, live_view))

    return await in_one_hop(request, answer)


@router.patch("/events/{event_id}", response_model=EventDetail, responses=ERRORS)
def update_event(
    request: Request, session: DB, user: Me, event_id: EventId, body: EventPatch
) -> EventDetail:
    ctx = context_of(request)
    event = events.get_managed(session, event_id, user)
    events.update_event(session, event, body, ctx.links, ctx.sender)
    session.commit()
    return _event_out(session, event, user)


@router.delete("/events/{event_id}", response_model=EventDetail, responses=ERRORS)
def cancel_event(request: Request, session: DB, user: Me, event_id: EventId) -> EventDetail:
    """Cancel the event: it stays in the catalog as cancelled and invitees get a CANCEL."""
    ctx = context_of(request)
    event = events.get_managed(session, event_id, user)
    events.cancel_event(session, event, ctx.links, ctx.sender)
    session.commit()
    return _event_out(session, event, user)


@router.get(
    "/events/{event_id}/registrations", response_model=list[RegistrationOut], responses=ERRORS
)
def list_registrations(session: DB, user: Me, event_id: EventId) -> list[RegistrationOut]:
    event = events.get_managed(session, event_id, user)
    return [_registration_out(r) for r in events.registrations(session, event)]


@router.post(
    "/events/{event_id}/registrations",
    status_code=201,
    response_model=RegistrationOut,
    responses=ERRORS,
)
def add_registration(
    request: Request, session: DB, user: Me, event_id: EventId, body: RegistrationIn
) -> RegistrationOut:
    """Register yourself (empty body), or, as a manager, register someone by email."""
    ctx = context_of(request)
    event = events.load_event(session, event_id)
    if event is None or not (event.visibility == "public" or events.can_view(session, event, user)):
        raise EventError(404, "event_not_found", f"no event {event_id}")
    registration = events.register(session, event, user, body, ctx.links, ctx.sender)
    session.commit()
    return _registration_out(registration)


@router.delete(
    "/events/{event_id}/registrations/{registration_id}",
    response_model=RegistrationOut,
    responses=ERRORS,
)
def revoke_registration(
    request: Request, session: DB, user: Me, event_id: EventId, registration_id: ItemId
) -> RegistrationOut:
    ctx = context_of(request)
    event = events.get_visible(session, event_id, user)
    registration = events.revoke_registration(
        session, event, user, registration_id, ctx.links, ctx.sender
    )
    session.commit()
    return _registration_out(registration)


@router.post(
    "/events/{event_id}/ticket",
    response_class=Response,
    responses={
        200: {
            "content": {ticket.MEDIA_TYPE: {}},
            "description": "the join ticket file (docs/tickets.md)",
        },
        **ERRORS,
    },
)
def get_ticket(
    request: Request, session: DB, event_id: EventId, body: TicketIn | None = None
) -> Response:
    """A join ticket for the caller; for a public event, also for a guest not signed in.

    The organizer, admins and moderators join as moderators, presenters as
    presenters, registered users (and, for a public event, anyone) as
    participants. A person's new ticket replaces their earlier one; guests not
    signed in get a limited number per address (429 ``guest_rate_limited``).
    """
    viewer = identify(request, session)
    if viewer.user is not None:
        check_api_write(request, viewer)
    event = events.load_event(session, event_id)
    if event is None:
        if viewer.user is None:
            # Nothing is said to a stranger about which events exist.
            raise EventError(401, "not_signed_in", "sign in to join this event")
        raise EventError(404, "event_not_found", f"no event {event_id}")
    guest_name = body.display_name if body is not None and viewer.user is None else ""
    return join_ticket(request, session, event, viewer.user, guest_name)


class BrowserServerOut(BaseModel):
    name: str
    host: str
    port: int
    zone: str


class BrowserTicketOut(BaseModel):
    """The part of a join ticket the browser participant reads (docs/tickets.md).

    No proxy cookies: the page already runs in the user's session. The sealed
    credential stays opaque, base64 as in the ticket file.
    """

    event_id: int
    title: str
    not_after: int
    display_name: str
    role: str
    servers: list[BrowserServerOut]
    sealed_credential: str


@router.post("/events/{event_id}/browser-ticket", response_model=BrowserTicketOut, responses=ERRORS)
def get_browser_ticket(request: Request, session: DB, event_id: EventId) -> BrowserTicketOut:
    """A join ticket for the signed-in caller, as JSON for the browser's room page.

    A cookie-authenticated call must be a JSON POST (``check_api_write``), so
    another site cannot make the user's browser fetch one.
    """
    viewer = identify(request, session)
    if viewer.user is None:
        raise EventError(401, "not_signed_in", "sign in to join this event")
    check_api_write(request, viewer)
    event = events.get_visible(session, event_id, viewer.user)
    ctx = context_of(request)
    try:
        own = events.registration_of(session, event, viewer.user)
        role = live.join_role(session, event, viewer.user, own)
        now = now_utc()
        live.check_joinable(event, now)
        data = live.issue_join_ticket(
            session,
            ctx.settings,
            event,
            viewer.user,
            role,
            trees=ctx.trees,
            now=now,
            keys=ctx.keys,
            own_registration=own,
        )
    except EventError:
        count_ticket(request, "refused")
        raise
    session.commit()
    count_ticket(request, "issued")
    opened = ticket.open_ticket(data, center_public_key=None, now=int(now.timestamp()))
    return BrowserTicketOut(
        event_id=opened.event_id,
        title=opened.title,
        not_after=opened.not_after,
        display_name=opened.display_name,
        role=str(opened.role),
        servers=[
            BrowserServerOut(name=s.name, host=s.host, port=s.port, zone=str(s.zone))
            for s in opened.servers
        ],
        sealed_credential=base64.b64encode(opened.sealed_credential).decode(),
    )


@router.get("/events/{event_id}/mail", response_model=list[MailOut], responses=ERRORS)
def event_mail(session: DB, user: Me, event_id: EventId) -> list[MailOut]:
    """The invitation mails of an event and how their delivery went."""
    event = events.get_managed(session, event_id, user)
    jobs = session.scalars(
        select(MailJob).where(MailJob.event_id == event.id).order_by(MailJob.id)
    ).all()
    return [
        MailOut(
            id=job.id,
            recipient=job.recipient,
            purpose=job.purpose,
            status=job.status,
            attempts=job.attempts,
            last_error=job.last_error,
            next_attempt_at=utc(job.next_attempt_at),
            sent_at=utc(job.sent_at) if job.sent_at else None,
        )
        for job in jobs
    ]


@router.post("/events/{event_id}/mail/{job_id}/retry", status_code=204, responses=ERRORS)
def retry_mail(session: DB, user: Me, event_id: EventId, job_id: ItemId) -> Response:
    event = events.get_managed(session, event_id, user)
    job = session.get(MailJob, job_id)
    if job is None or job.event_id != event.id:
        raise EventError(404, "mail_not_found", f"no mail {job_id} for this event")
    mailer.retry_now(session, job.id)
    session.commit()
    return Response(status_code=204)


@router.get("/events/{event_id}/dialin", response_model=DialInOut, responses=ERRORS)
def dialin(request: Request, session: DB, user: Me, event_id: EventId) -> DialInOut:
    event = events.get_visible(session, event_id, user)
    return DialInOut(
        numbers=list(context_of(request).settings.center.dialin_numbers),
        access_code=dialin_code(request, event),
        audio_mode=event.audio_mode,
    )


@router.get("/tokens", response_model=list[TokenOut], responses=ERRORS)
def list_tokens(session: DB, user: Me) -> list[TokenOut]:
    return [_token_out(t) for t in accounts.list_tokens(session, user)]


@router.post("/tokens", status_code=201, response_model=NewTokenOut, responses=ERRORS)
def create_token(session: DB, user: Me, body: TokenIn) -> NewTokenOut:
    token, value = accounts.create_token(session, user, body.name)
    session.commit()
    return NewTokenOut(**_token_out(token).model_dump(), token=value)


@router.delete("/tokens/{token_id}", status_code=204, responses=ERRORS)
def revoke_token(session: DB, user: Me, token_id: ItemId) -> Response:
    if not accounts.revoke_token(session, user, token_id):
        raise EventError(404, "token_not_found", f"no token {token_id}")
    session.commit()
    return Response(status_code=204)
