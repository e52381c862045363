"""The Center's HTML portal: sign-in, catalog, scheduling, event pages, account, admin.

Pages are rendered on the server by Jinja2 with autoescape on and work without
JavaScript. Every rule lives in
``events`` and ``accounts``, shared with the REST API; this module only turns
forms into their models and results into pages. It knows nothing of SMTP or
iCalendar beyond calling ``mailer`` and ``calendar``, and nothing of server
trees beyond the Manager's in-process calls (``manager.registry.list_trees``,
``event_tree_id``, ``choose_tree``; docs/manager.md) behind the event page's
tree choice, and nothing of live servers beyond ``center.live`` (the Join button's
ticket, the Live section's tree state).

Pages render in the web shell's frame (``townhall.web.render``); who may ask
a route is in its signature (``SignedInUser``, ``EventPost``, ``AdminPage``
...: the shell's ``SignedIn`` dependency), and every form posts the shell's
session-bound CSRF token. Password sign-in opens a portal session; an SSO
user never gets one (``auth``). The
personal link ``/j/<registration>.<signature>`` from an invitation mail is a
bearer secret: it shows its registrant the event without an account.
"""

from __future__ import annotations

import email
import email.policy
import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from email.message import EmailMessage
from pathlib import Path as FilePath
from typing import Annotated, Any, Literal
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Path, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall.center import accounts, calendar, events, live, mailer
from townhall.center.api import EventId, dialin_code, join_ticket
from townhall.center.auth import SESSION_COOKIE, CenterViewer, context_of
from townhall.center.events import EventError, EventIn, EventPatch, RegistrationIn
from townhall.center.tables import Event, MailJob, Registration, User
from townhall.manager import registry as manager_registry
from townhall.store.conventions import now_utc, utc
from townhall.web.csrf import make_token, set_csrf_cookie
from townhall.web.deps import DB, MAX_ID, Done, ItemId, SignedIn, checked_form, page_viewer
from townhall.web.errors import redirect, safe_next
from townhall.web.render import Pages, viewer_zone, zoneinfo
from townhall.web.shell import Viewer, shell_of

router = APIRouter(include_in_schema=False)


# --- shared --------------------------------------------------------------------------


CENTER = FilePath(__file__).parent


PAGES = Pages(CENTER / "templates")


render = PAGES.render


PAGE_SIZE = 50


NOT_ADMIN = "only administrators may see this page"


# Short confirmations after a redirect: the query names one, the text is ours,
# so nothing a link carries is ever shown.
NOTICES = {
    "created": "The event is scheduled; invitations are on their way.",
    "updated": "The event is saved; invitees get an update.",
    "cancelled": "The event is cancelled; invitees get a cancellation.",
    "registered": "You are registered.",
    "added": "The registration is added and an invitation queued.",
    "revoked": "The registration is revoked.",
    "unregistered": "Your registration is cancelled.",
    "retried": "The mail is queued again.",
    "zone": "Your time zone is saved.",
    "token_revoked": "The token is revoked.",
    "user_added": "The user is added.",
    "tree": "The event's server tree is saved.",
}


_FIELD_LABELS = {
    "starts_at": "start",
    "duration_minutes": "duration",
    "audio_mode": "audio",
    "timezone": "time zone",
}


Who = Annotated[CenterViewer, Depends(page_viewer)]


# Whoever posts a form from our pages, signed in or not (sign-in, sign-out).
FormViewer = Annotated[CenterViewer, Depends(checked_form)]


SignedInUser = Annotated[User, Depends(SignedIn())]


EventPost = Annotated[User, Depends(SignedIn(form=True, back="/events/{event_id}"))]


AccountPost = Annotated[User, Depends(SignedIn(form=True, back="/account"))]


AdminPage = Annotated[User, Depends(SignedIn(admin=NOT_ADMIN))]


AdminPost = Annotated[User, Depends(SignedIn(form=True, admin=NOT_ADMIN))]


def notice(done: str) -> str:
    return NOTICES.get(done, "")


def validation_problems(error: ValidationError) -> list[str]:
    """A form's refusals as the reader names its fields."""
    problems = []
    for item in error.errors()[:20]:
        location = item.get("loc", ())
        field = str(location[0]) if location else "form"
        message = str(item.get("msg", "invalid")).removeprefix("Value error, ")
        problems.append(f"{_FIELD_LABELS.get(field, field)}: {message}")
    return problems


# --- signin --------------------------------------------------------------------------


log = logging.getLogger("townhall.center.pages")


@router.get("/")
def home(viewer: Who) -> Response:
    if viewer.user is None:
        return redirect("/login?next=/events")
    return redirect("/events")


@router.get("/login")
def login_form(
    request: Request, viewer: Who, next: Annotated[str, Query(max_length=2000)] = "/events"
) -> Response:
    target = safe_next(next)
    if viewer.user is not None:
        # SSO users sign in at the proxy; a signed-in user has nothing to do here.
        return redirect(target)
    return render(request, "login.html", {"next": target, "username": "", "error": ""})


@router.post("/login")
def login(
    request: Request,
    session: DB,
    viewer: FormViewer,
    username: Annotated[str, Form(max_length=254)] = "",
    password: Annotated[str, Form(max_length=1024)] = "",
    next: Annotated[str, Form(max_length=2000)] = "/events",
) -> Response:
    target = safe_next(next)
    if viewer.via == "sso":
        return redirect(target)
    user = accounts.user_by_name(session, username.strip())
    if user is None:
        accounts.hash_password(password)  # as slow as a real check: names are not probed cheaply
        ok = False
    else:
        ok = accounts.check_password(user, password)
    if user is None or not ok:
        peer = request.client.host if request.client else "?"
        log.info("failed password sign-in for %r from %s", username[:128], peer)
        context = {"next": target, "username": username, "error": "Wrong username or password."}
        return render(request, "login.html", context, status=401)
    shell = shell_of(request)
    cookie = shell.cookie_name(SESSION_COOKIE)
    old = request.cookies.get(cookie, "")
    if old:
        accounts.close_session(session, old)
    minutes = context_of(request).settings.center.session_minutes
    web_session, value = accounts.open_session(session, user, minutes)
    session.commit()
    response = redirect(target)
    response.set_cookie(
        cookie,
        value,
        max_age=minutes * 60,
        httponly=True,
        samesite="lax",
        secure=shell.https,
        path="/",
    )
    # A new session gets a new form token bound to it, so one planted before
    # sign-in, or taken from another session, is worthless.
    signed_in = Viewer(user, "session", str(web_session.id))
    set_csrf_cookie(request, response, make_token(shell, signed_in))
    return response


@router.post("/logout")
def logout(request: Request, session: DB, viewer: FormViewer) -> Response:
    if viewer.via == "sso":
        return render(request, "signed_out.html", {"sso": True})
    shell = shell_of(request)
    name = shell.cookie_name(SESSION_COOKIE)
    cookie = request.cookies.get(name, "")
    if cookie:
        accounts.close_session(session, cookie)
        session.commit()
    response = redirect("/login")
    response.delete_cookie(name, path="/", httponly=True, samesite="lax", secure=shell.https)
    return response


# --- catalog -------------------------------------------------------------------------


def _day_bound(value: str, name: str, zone: ZoneInfo) -> datetime | None:
    """A date input, taken as a day in the reader's zone."""
    if not value:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError as error:
        raise ValueError(f"{name}: not a date (YYYY-MM-DD)") from error
    moment = datetime.combine(day, time.min, tzinfo=zone)
    if not events.EARLIEST <= moment < events.LATEST - timedelta(days=1):
        raise ValueError(f"{name}: out of range")
    return moment


@router.get("/events")
def catalog_page(
    request: Request,
    session: DB,
    user: SignedInUser,
    q: Annotated[str, Query(max_length=200)] = "",
    when: Literal["upcoming", "past", "all"] = "upcoming",
    date_from: Annotated[str, Query(alias="from", max_length=10)] = "",
    date_to: Annotated[str, Query(alias="to", max_length=10)] = "",
    cancelled: bool = False,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    zone = zoneinfo(viewer_zone(request, user))
    errors: list[str] = []
    try:
        after = _day_bound(date_from, "from", zone)
        before = _day_bound(date_to, "to", zone)
    except ValueError as error:
        errors.append(str(error))
        after = before = None
    if before is not None:
        before += timedelta(days=1)  # "to" names the last day shown
    rows: list[events.Listed] = []
    more = False
    if not errors:
        query = events.CatalogQuery(
            text=q.strip(),
            when=when,
            starts_after=after,
            starts_before=before,
            include_cancelled=cancelled,
            limit=PAGE_SIZE,
            offset=(page - 1) * PAGE_SIZE,
        )
        rows, more = events.catalog(session, user, query)
    params: dict[str, str] = {"q": q, "when": when, "from": date_from, "to": date_to}
    if cancelled:
        params["cancelled"] = "1"
    kept = {key: value for key, value in params.items() if value}

    def page_link(number: int) -> str:
        return "/events?" + urlencode({**kept, "page": str(number)})

    context = {
        "rows": rows,
        "q": q,
        "when": when,
        "date_from": date_from,
        "date_to": date_to,
        "cancelled": cancelled,
        "page": page,
        "prev_link": page_link(page - 1) if page > 1 else "",
        "next_link": page_link(page + 1) if more else "",
        "can_schedule": events.can_schedule(user),
        "errors": errors,
    }
    return render(request, "events.html", context, status=422 if errors else 200)


# --- scheduling ----------------------------------------------------------------------


NewEventPost = Annotated[User, Depends(SignedIn(form=True, back="/events/new"))]


EditEventPost = Annotated[User, Depends(SignedIn(form=True, back="/events/{event_id}/edit"))]


class EventForm(BaseModel):
    """The event form as typed: kept whole so a refused form comes back as it was sent."""

    title: str = ""
    description: str = ""
    agenda: str = ""
    start: str = ""
    timezone: str = ""
    duration_minutes: str = "60"
    kind: str = "meeting"
    visibility: str = "private"
    audio_mode: str = "voip"
    recording: str = ""
    moderators: str = ""
    presenters: str = ""
    invitees: str = ""


def _split(text: str, separators: str) -> list[str]:
    return [part for part in re.split(separators, text) if part]


def _form_data(form: EventForm) -> tuple[dict[str, Any], list[str]]:
    """The form's values in ``EventIn`` shape, and what could not be read."""
    problems: list[str] = []
    data: dict[str, Any] = {
        "title": form.title,
        "description": form.description,
        "agenda": form.agenda,
        "timezone": form.timezone.strip(),
        "kind": form.kind,
        "visibility": form.visibility,
        "audio_mode": form.audio_mode,
        "recording": bool(form.recording),
        "moderators": _split(form.moderators, r"[,;\s]+"),
        "presenters": _split(form.presenters, r"[,;\s]+"),
        "invitees": _split(form.invitees, r"[,;\s]+"),
    }
    zone: ZoneInfo | None = None
    try:
        zone = events.check_timezone(data["timezone"])
    except ValueError as error:
        problems.append(f"time zone: {error}")
    local: datetime | None = None
    text = form.start.strip()
    try:
        if len(text) > 32:
            raise ValueError(text)
        local = datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        problems.append("start: enter a date and a time")
    if zone is not None and local is not None:
        start = local.replace(tzinfo=zone)
        if start.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != local:
            problems.append(f"start: {local:%H:%M} does not exist that day in {zone.key}")
        data["starts_at"] = start
    try:
        data["duration_minutes"] = int(form.duration_minutes.strip())
    except ValueError:
        problems.append("duration: a whole number of minutes")
    return data, problems


def _read_event_form(form: EventForm, model: type[BaseModel]) -> tuple[Any, list[str]]:
    data, problems = _form_data(form)
    if problems:
        return None, problems
    try:
        return model.model_validate(data), []
    except ValidationError as error:
        return None, validation_problems(error)


def _form_of(event: Event, session: Session) -> EventForm:
    zone = zoneinfo(event.timezone)
    invited = [
        r.email for r in events.active_registrations(session, event) if r.source == "invited"
    ]
    return EventForm(
        title=event.title,
        description=event.description,
        agenda=event.agenda,
        start=f"{utc(event.starts_at).astimezone(zone):%Y-%m-%dT%H:%M}",
        timezone=zone.key,
        duration_minutes=str(event.duration_minutes),
        kind=event.kind,
        visibility=event.visibility,
        audio_mode=event.audio_mode,
        recording="on" if event.recording else "",
        moderators=", ".join(r.user.username for r in event.roles if r.role == "moderator"),
        presenters=", ".join(r.user.username for r in event.roles if r.role == "presenter"),
        invitees="\n".join(invited),
    )


def _event_form_page(
    request: Request, form: EventForm, *, event: Event | None, errors: list[str], status: int
) -> Response:
    context = {"form": form, "event": event, "errors": errors}
    return render(request, "event_form.html", context, status=status)


@router.get("/events/new")
def new_event_form(request: Request, user: SignedInUser) -> Response:
    if not events.can_schedule(user):
        raise EventError(403, "not_organizer", "only organizers and admins may schedule events")
    form = EventForm(timezone=viewer_zone(request, user))
    return _event_form_page(request, form, event=None, errors=[], status=200)


@router.post("/events/new")
def create_event(
    request: Request, session: DB, user: NewEventPost, form: Annotated[EventForm, Form()]
) -> Response:
    if not events.can_schedule(user):
        raise EventError(403, "not_organizer", "only organizers and admins may schedule events")
    data, problems = _read_event_form(form, EventIn)
    if problems:
        return _event_form_page(request, form, event=None, errors=problems, status=422)
    ctx = context_of(request)
    try:
        event = events.create_event(
            session, user, data, ctx.links, ctx.sender, ctx.settings.center.default_timezone
        )
    except EventError as error:
        session.rollback()
        return _event_form_page(
            request, form, event=None, errors=[error.message], status=error.status
        )
    session.commit()
    return redirect(f"/events/{event.id}?done=created")


@router.get("/events/{event_id}/edit")
def edit_event_form(
    request: Request, session: DB, user: SignedInUser, event_id: EventId
) -> Response:
    event = events.get_managed(session, event_id, user)
    return _event_form_page(request, _form_of(event, session), event=event, errors=[], status=200)


@router.post("/events/{event_id}/edit")
def edit_event(
    request: Request,
    session: DB,
    user: EditEventPost,
    event_id: EventId,
    form: Annotated[EventForm, Form()],
) -> Response:
    event = events.get_managed(session, event_id, user)
    data, problems = _read_event_form(form, EventPatch)
    if problems:
        return _event_form_page(request, form, event=event, errors=problems, status=422)
    ctx = context_of(request)
    try:
        events.update_event(session, event, data, ctx.links, ctx.sender)
    except EventError as error:
        session.rollback()
        return _event_form_page(
            request, form, event=event, errors=[error.message], status=error.status
        )
    session.commit()
    return redirect(f"/events/{event.id}?done=updated")


@router.post("/events/{event_id}/cancel")
def cancel_event(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    ctx = context_of(request)
    event = events.get_managed(session, event_id, user)
    events.cancel_event(session, event, ctx.links, ctx.sender)
    session.commit()
    return redirect(f"/events/{event.id}?done=cancelled")


# --- event ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Guest:
    """Whom a personal join link was sent to."""

    registration: Registration
    dialin_code: str


def show_event(
    request: Request,
    session: Session,
    event: Event,
    user: User | None,
    *,
    guest: Guest | None = None,
    notice: str = "",
    errors: list[str] | None = None,
    status: int = 200,
) -> Response:
    manager = guest is None and events.can_manage(event, user)
    registration = guest.registration if guest else None
    if guest is None and user is not None:
        registration = events.registration_of(session, event, user)
    zone = viewer_zone(request, user)
    if guest is not None and user is None:
        owner = guest.registration.user
        zone = owner.timezone if owner is not None and owner.timezone else event.timezone
    mail: list[MailJob] = []
    if manager:
        mail = list(
            session.scalars(
                select(MailJob)
                .where(MailJob.event_id == event.id)
                .order_by(MailJob.id.desc())
                .limit(500)
            )
        )
    # Join: only for whoever may, while the event runs or is ahead, with live servers.
    may_join = guest is None and user is not None and live.may_join(session, event, user, now_utc())
    has_tree = False
    if may_join:
        try:
            has_tree = bool(live.ticket_servers(session, event.id))
        except EventError:
            has_tree = False
    live_state, live_servers = live.live_state(session, event.id)
    context = {
        "event": event,
        "zone": zone,
        "event_zone": zoneinfo(event.timezone).key,
        "may_join": may_join,
        "has_tree": has_tree,
        "live_state": live_state,
        "live_servers": live_servers,
        "moderators": [r.user for r in event.roles if r.role == "moderator"],
        "presenters": [r.user for r in event.roles if r.role == "presenter"],
        "manager": manager,
        "guest": guest,
        "registration": registration,
        "can_register": (
            guest is None
            and user is not None
            and event.visibility == "public"
            and event.status == "scheduled"
            and registration is None
        ),
        "registrations": events.registrations(session, event) if manager else [],
        "mail": mail,
        "numbers": context_of(request).settings.center.dialin_numbers,
        # The Manager's in-process contract (docs/manager.md): trees by id, the event by ours.
        "trees": manager_registry.list_trees(session) if manager else [],
        "tree_choice": manager_registry.event_tree_id(session, event.id) if manager else None,
        "notice": notice,
        "errors": errors or [],
    }
    return render(request, "event.html", context, status=status)


@router.get("/events/{event_id}")
def event_page(
    request: Request, session: DB, user: SignedInUser, event_id: EventId, done: Done = ""
) -> Response:
    event = events.get_visible(session, event_id, user)
    return show_event(request, session, event, user, notice=notice(done))


@router.post("/events/{event_id}/tree")
def choose_tree(
    request: Request,
    session: DB,
    user: EventPost,
    event_id: EventId,
    tree_id: Annotated[str, Form(max_length=20)] = "",
) -> Response:
    """The event's managers choose its server tree; empty: the Manager's default tree."""
    event = events.get_managed(session, event_id, user)
    if event.status != "scheduled":
        raise EventError(409, "event_cancelled", "a cancelled event cannot be changed")
    text = tree_id.strip()
    if text and not (text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_ID):
        return show_event(request, session, event, user, errors=["tree: not a tree"], status=422)
    try:
        manager_registry.choose_tree(session, event.id, int(text) if text else None)
    except manager_registry.ManagerError as error:
        session.rollback()
        return show_event(request, session, event, user, errors=[error.message], status=422)
    session.commit()
    return redirect(f"/events/{event.id}?done=tree")


@router.post("/events/{event_id}/ticket")
def join(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    """The Join button: the same join ticket as ``POST /api/v1/events/{id}/ticket``."""
    event = events.get_visible(session, event_id, user)
    return join_ticket(request, session, event, user)


@router.post("/events/{event_id}/mail/{job_id}/retry")
def retry_mail(
    request: Request, session: DB, user: EventPost, event_id: EventId, job_id: ItemId
) -> Response:
    event = events.get_managed(session, event_id, user)
    job = session.get(MailJob, job_id)
    if job is None or job.event_id != event.id:
        raise EventError(404, "mail_not_found", f"no mail {job_id} for this event")
    mailer.retry_now(session, job.id)
    session.commit()
    return redirect(f"/events/{event.id}?done=retried")


@router.get("/events/{event_id}/calendar.ics")
def event_calendar(
    request: Request, session: DB, user: SignedInUser, event_id: EventId
) -> Response:
    event = events.get_visible(session, event_id, user)
    ctx = context_of(request)
    body = calendar.event_ics(
        event,
        method="PUBLISH",
        organizer_email=event.organizer.email or "",
        organizer_name=event.organizer.label,
        attendees=[],
        url=ctx.links.event_page(event),
    )
    return Response(
        body,
        media_type="text/calendar; charset=utf-8",
        headers={
            "content-disposition": f'attachment; filename="townhall-event-{event.id}.ics"',
            "cache-control": "private, no-cache",
        },
    )


@router.get("/events/{event_id}/dialin")
def dialin_page(request: Request, session: DB, user: SignedInUser, event_id: EventId) -> Response:
    event = events.get_visible(session, event_id, user)
    context = {
        "event": event,
        "numbers": context_of(request).settings.center.dialin_numbers,
        "access_code": dialin_code(request, event),
    }
    return render(request, "dialin.html", context)


_JOIN_LINK = re.compile(r"(\d{1,10})\.([0-9a-f]{32})")


@router.get("/j/{link}")
def join_link(
    request: Request, session: DB, viewer: Who, link: Annotated[str, Path(max_length=64)]
) -> Response:
    match = _JOIN_LINK.fullmatch(link)
    if match is None or int(match.group(1)) > MAX_ID:
        raise EventError(404, "link_not_found", "this link is not valid")
    registration_id, signature = match.groups()
    if not context_of(request).secret.check("join", registration_id, signature):
        raise EventError(404, "link_not_found", "this link is not valid")
    registration = session.get(Registration, int(registration_id))
    event = session.get(Event, registration.event_id) if registration is not None else None
    if registration is None or event is None:
        raise EventError(404, "link_not_found", "this link is not valid")
    if registration.status == "revoked":
        raise EventError(
            403,
            "registration_revoked",
            "this registration was revoked: ask the organizer if you think it should not be",
        )
    guest = Guest(registration=registration, dialin_code=dialin_code(request, event))
    return show_event(request, session, event, viewer.user, guest=guest)


# --- registrations -------------------------------------------------------------------


@router.post("/events/{event_id}/register")
def register(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    ctx = context_of(request)
    event = session.get(Event, event_id)
    if event is None or not (event.visibility == "public" or events.can_view(session, event, user)):
        raise EventError(404, "event_not_found", f"no event {event_id}")
    events.register(session, event, user, RegistrationIn(), ctx.links, ctx.sender)
    session.commit()
    return redirect(f"/events/{event.id}?done=registered")


@router.post("/events/{event_id}/registrations")
def add_registration(
    request: Request,
    session: DB,
    user: EventPost,
    event_id: EventId,
    email: Annotated[str, Form(max_length=300)] = "",
    display_name: Annotated[str, Form(max_length=300)] = "",
) -> Response:
    ctx = context_of(request)
    event = events.get_managed(session, event_id, user)
    try:
        if not email.strip():
            raise ValueError("email: enter an email address")
        data = RegistrationIn(email=email, display_name=display_name)
    except ValidationError as error:
        problems = validation_problems(error)
        return show_event(request, session, event, user, errors=problems, status=422)
    except ValueError as error:
        return show_event(request, session, event, user, errors=[str(error)], status=422)
    events.register(session, event, user, data, ctx.links, ctx.sender)
    session.commit()
    return redirect(f"/events/{event.id}?done=added")


@router.post("/events/{event_id}/registrations/{registration_id}/revoke")
def revoke_registration(
    request: Request,
    session: DB,
    user: EventPost,
    event_id: EventId,
    registration_id: ItemId,
) -> Response:
    ctx = context_of(request)
    event = events.get_visible(session, event_id, user)
    registration = events.revoke_registration(
        session, event, user, registration_id, ctx.links, ctx.sender
    )
    own = registration.user_id == user.id or registration.email == user.email
    session.commit()
    if not events.can_view(session, event, user):
        return redirect("/events")  # a private event is gone for whoever left it
    return redirect(f"/events/{event.id}?done={'unregistered' if own else 'revoked'}")


# --- account -------------------------------------------------------------------------


def _account_page(
    request: Request,
    session: Session,
    user: User,
    *,
    notice: str = "",
    errors: list[str] | None = None,
    new_token: str = "",
    token_name: str = "",
    status: int = 200,
) -> Response:
    context = {
        "tokens": accounts.list_tokens(session, user),
        "notice": notice,
        "errors": errors or [],
        "new_token": new_token,
        "token_name": token_name,
        "default_zone": context_of(request).settings.center.default_timezone,
    }
    # A page that shows a token once must not be kept by any cache.
    cache = "no-store" if new_token else "private, no-cache"
    return render(request, "account.html", context, status=status, cache=cache)


@router.get("/account")
def account_page(request: Request, session: DB, user: SignedInUser, done: Done = "") -> Response:
    return _account_page(request, session, user, notice=notice(done))


@router.post("/account/timezone")
def set_timezone(
    request: Request,
    session: DB,
    user: AccountPost,
    timezone: Annotated[str, Form(max_length=64)] = "",
) -> Response:
    timezone = timezone.strip()
    if timezone:
        try:
            timezone = events.check_timezone(timezone).key
        except ValueError as error:
            return _account_page(request, session, user, errors=[str(error)], status=422)
    user.timezone = timezone
    session.commit()
    return redirect("/account?done=zone")


@router.post("/account/tokens")
def create_token(
    request: Request,
    session: DB,
    user: AccountPost,
    name: Annotated[str, Form(max_length=200)] = "",
) -> Response:
    try:
        _, value = accounts.create_token(session, user, name)
    except accounts.AccountError as error:
        session.rollback()
        return _account_page(request, session, user, errors=[error.message], status=422)
    session.commit()
    return _account_page(request, session, user, new_token=value, token_name=name.strip())


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(request: Request, session: DB, user: AccountPost, token_id: ItemId) -> Response:
    if not accounts.revoke_token(session, user, token_id):
        raise EventError(404, "token_not_found", f"no token {token_id}")
    session.commit()
    return redirect("/account?done=token_revoked")


# --- admin ---------------------------------------------------------------------------


@router.get("/admin/outbox")
def outbox_page(
    request: Request,
    session: DB,
    _: AdminPage,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Response:
    total = session.scalar(select(func.count()).select_from(MailJob)) or 0
    jobs = session.scalars(
        select(MailJob).order_by(MailJob.id.desc()).limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ).all()
    pages = max(1, -(-total // PAGE_SIZE))
    context = {
        "jobs": jobs,
        "total": total,
        "page": page,
        "pages": pages,
        "prev_link": f"/admin/outbox?page={page - 1}" if page > 1 else "",
        "next_link": f"/admin/outbox?page={page + 1}" if page < pages else "",
    }
    return render(request, "admin_outbox.html", context)


def _readable(raw: bytes) -> tuple[list[tuple[str, str]], str, list[tuple[str, str]]]:
    """Headers, the text part and the list of parts of a stored message."""
    message = email.message_from_bytes(raw, policy=email.policy.default)
    headers = [(name, str(value)) for name, value in message.items()]
    text = ""
    if isinstance(message, EmailMessage):
        body = message.get_body(preferencelist=("plain",))
        if body is not None and isinstance(body, EmailMessage):
            try:
                text = str(body.get_content())
            except (LookupError, ValueError) as error:
                text = f"(the text part cannot be decoded: {error})"
    parts = [
        (part.get_content_type(), part.get_filename() or "")
        for part in message.walk()
        if not part.is_multipart()
    ]
    return headers, text, parts


@router.get("/admin/outbox/{job_id}")
def outbox_message(request: Request, session: DB, _: AdminPage, job_id: ItemId) -> Response:
    job = session.get(MailJob, job_id)
    if job is None:
        raise EventError(404, "mail_not_found", f"no mail {job_id}")
    headers, text, parts = _readable(job.message)
    context = {"job": job, "headers": headers, "text": text, "parts": parts}
    return render(request, "admin_message.html", context)


def _users_page(
    request: Request,
    session: Session,
    *,
    notice: str = "",
    errors: list[str] | None = None,
    form: dict[str, str] | None = None,
    status: int = 200,
) -> Response:
    users = session.scalars(select(User).order_by(User.username).limit(1000)).all()
    context = {
        "users": users,
        "roles": accounts.ROLES,
        "notice": notice,
        "errors": errors or [],
        "form": form or {"username": "", "email": "", "role": "member"},
    }
    return render(request, "admin_users.html", context, status=status)


@router.get("/admin/users")
def users_page(request: Request, session: DB, _: AdminPage, done: Done = "") -> Response:
    return _users_page(request, session, notice=notice(done))


@router.post("/admin/users")
def add_user(
    request: Request,
    session: DB,
    _: AdminPost,
    username: Annotated[str, Form(max_length=200)] = "",
    email: Annotated[str, Form(max_length=300)] = "",
    role: Annotated[str, Form(max_length=20)] = "member",
    password: Annotated[str, Form(max_length=1024)] = "",
) -> Response:
    form = {"username": username, "email": email, "role": role}
    try:
        accounts.create_user(
            session,
            username.strip(),
            email=email.strip() or None,
            role=role,
            password=password or None,
        )
    except accounts.AccountError as error:
        session.rollback()
        return _users_page(request, session, errors=[error.message], form=form, status=422)
    session.commit()
    return redirect("/admin/users?done=user_added")
