"""An event's page and what its buttons do: tree, Join, mail retry, calendar, dial-in.

``show_event`` renders the page for a signed-in user or, through the
personal link ``/j/<registration>.<signature>`` from an invitation mail (a
bearer secret), for its registrant without an account. The page shows the
tree's live state (``center.live``) and, to the event's managers, the server
tree choice (the Manager's in-process calls ``list_trees``, ``event_tree_id``,
``choose_tree``; docs/manager.md). The Join button answers the same join
ticket as ``POST /api/v1/events/{id}/ticket``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.center import attendance, calendar, events, live, mailer, polls, recordings
from townhall.center.api import EventId, dialin_code, join_ticket
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import (
    EventPost,
    SignedInUser,
    Who,
    notice,
    render,
    signed_in_user,
)
from townhall.center.tables import Event, MailJob, Registration, User
from townhall.center.trees import TreeRefused
from townhall.store.conventions import now_utc
from townhall.web.deps import DB, MAX_ID, Done, ItemId, in_one_hop
from townhall.web.errors import redirect
from townhall.web.render import viewer_zone, zoneinfo

router = APIRouter(include_in_schema=False)


@dataclass(frozen=True, slots=True)
class Guest:
    """Whom a personal join link was sent to."""

    registration: Registration
    dialin_code: str
    link: str = ""  # the link itself: its Join button posts to /j/<link>/ticket


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
    live_view: live.LiveView | None = None,
) -> Response:
    """The event page; ``live_view``: the event's live state, when the caller loaded it."""
    manager = guest is None and events.can_manage(event, user)
    trees = context_of(request).trees
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
    now = now_utc()
    if guest is not None:  # invited by email: the link's own ticket (access_routes)
        may_join = guest.registration.status == "registered" and event.status != "cancelled"
        may_join = may_join and now < event.ends_at
    else:
        may_join = user is not None and live.may_join(session, event, user, now, registration)
    has_tree = False
    if may_join:
        try:
            has_tree = bool(live.ticket_servers(session, trees, event.id))
        except EventError:
            has_tree = False
    live_state, live_servers = live_view or live.live_state(session, event.id)
    context = {
        "event": event,
        "zone": zone,
        "event_zone": zoneinfo(event.timezone).key,
        "may_join": may_join,
        "join_action": f"/j/{guest.link}/ticket" if guest else f"/events/{event.id}/ticket",
        "has_tree": has_tree,
        "live_state": live_state,
        "live_servers": live_servers,
        "moderators": events.people_of(event, "moderator"),
        "presenters": events.people_of(event, "presenter"),
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
        "removals": live.removals(session, event) if manager else [],
        "attendance": attendance.report(session, event, now) if manager else None,
        "kept": polls.kept_polls(session, event) if manager else None,
        "mail": mail,
        "numbers": context_of(request).settings.center.dialin_numbers,
        # The Manager's answers through the Center's contract (center/trees.py).
        "trees": trees.options(session) if manager else [],
        "tree_choice": trees.chosen(session, event.id) if manager else None,
        "recording": (
            recordings.find(context_of(request).settings, session, event.id)
            if guest is None
            else None
        ),
        "notice": notice,
        "errors": errors or [],
    }
    return render(request, "event.html", context, status=status)


@router.get("/events/{event_id}")
async def event_page(request: Request, event_id: EventId, done: Done = "") -> Response:
    def answer(session: Session) -> Response:
        user = signed_in_user(request, session)
        event, live_view = live.visible_event_and_live_state(session, event_id, user)
        return show_event(request, session, event, user, notice=notice(done), live_view=live_view)

    return await in_one_hop(request, answer)


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
        context_of(request).trees.choose(session, event.id, int(text) if text else None)
    except TreeRefused as error:
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


@router.get("/j/{link}")
def join_link(
    request: Request, session: DB, viewer: Who, link: Annotated[str, Path(max_length=64)]
) -> Response:
    registration, event = context_of(request).registration_of_link(session, link)
    if registration.status == "revoked":
        raise EventError(
            403,
            "registration_revoked",
            "this registration was revoked: ask the organizer if you think it should not be",
        )
    if viewer.user is not None and registration.user_id is None:
        # The mailed link proves the mailbox: the invitation becomes this account's.
        registration.user_id = viewer.user.id
        session.commit()
    guest = Guest(registration=registration, dialin_code=dialin_code(request, event), link=link)
    return show_event(request, session, event, viewer.user, guest=guest)
