"""Registrations: a user registers for a public event, managers add and revoke them.

Adding one queues an invitation with the registrant's personal link;
revoking one's own registration is unregistering. The rules are
``events.register`` and ``events.revoke_registration``'s.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from pydantic import ValidationError

from townhall.center import events
from townhall.center.api import EventId
from townhall.center.auth import context_of
from townhall.center.events import EventError, RegistrationIn
from townhall.center.pages.common import EventPost, validation_problems
from townhall.center.pages.event import show_event
from townhall.center.tables import Event
from townhall.web.deps import DB, ItemId
from townhall.web.errors import redirect

router = APIRouter(include_in_schema=False)


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
