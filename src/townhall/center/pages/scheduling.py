"""Scheduling: the event form (new and edit) and cancelling an event.

The form is read as typed (``EventForm``) so that a refused form comes back
as it was sent; its values become ``events.EventIn`` or ``EventPatch``, the
same models as the REST API's, and every rule lives in ``events``.
Invitations, updates and cancellations go out through ``mailer``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from townhall.center import events
from townhall.center.api import EventId
from townhall.center.auth import context_of
from townhall.center.events import EventError, EventIn, EventPatch
from townhall.center.pages.common import EventPost, SignedInUser, render, validation_problems
from townhall.center.tables import Event, User
from townhall.store.conventions import utc
from townhall.web.deps import DB, SignedIn
from townhall.web.errors import redirect
from townhall.web.render import viewer_zone, zoneinfo

NewEventPost = Annotated[User, Depends(SignedIn(form=True, back="/events/new"))]
EditEventPost = Annotated[User, Depends(SignedIn(form=True, back="/events/{event_id}/edit"))]

router = APIRouter(include_in_schema=False)


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
        moderators=", ".join(u.username for u in events.people_of(event, "moderator")),
        presenters=", ".join(u.username for u in events.people_of(event, "presenter")),
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
