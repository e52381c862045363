"""Routes of who may come back: removals and letting back in, and a guest's ticket by link.

A moderator's Remove in a live event reaches the Center through the
Controller (``live.record_removals``) and bars the person from new tickets;
here the event's managers list the removals (who was removed, by whom, when)
and let someone back in, from the API and from the event page's button. A
guest invited by email, without an account, gets a join ticket with their
personal link (``POST /j/<link>/ticket``), the one credential of that
registration. The rules are ``center.live``'s; this module only maps HTTP
to them. docs/security.md, "Remove means removed".
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import BaseModel

from townhall.center import events, live
from townhall.center.api import EventId, Me, join_ticket
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import EventPost
from townhall.center.tables import Removal, User
from townhall.store.conventions import utc
from townhall.web.deps import DB, ItemId
from townhall.web.errors import ERRORS

router = APIRouter()



class RemovalOut(BaseModel):
    id: int
    name: str
    removed_by: str
    removed_at: datetime
    email: str | None
    username: str | None
    guest_link: bool
    lifted_at: datetime | None
    lifted_by: str


def removal_out(session: DB, removal: Removal) -> RemovalOut:
    from_user = removal.user_id is not None
    user = session.get(User, removal.user_id) if from_user else None
    return RemovalOut(
        id=removal.id,
        name=removal.name,
        removed_by=removal.removed_by,
        removed_at=utc(removal.removed_at),
        email=removal.email,
        username=user.username if user is not None else None,
        guest_link=removal.registration_id is not None,
        lifted_at=utc(removal.lifted_at) if removal.lifted_at else None,
        lifted_by=removal.lifted_by,
    )


@router.get(
    "/api/v1/events/{event_id}/removals",
    response_model=list[RemovalOut],
    responses=ERRORS,
    tags=["api"],
)
def list_removals(session: DB, user: Me, event_id: EventId) -> list[RemovalOut]:
    """Who moderators removed from the live event, by whom; the organizer's record."""
    event = events.get_managed(session, event_id, user)
    return [removal_out(session, r) for r in live.removals(session, event)]


@router.post(
    "/api/v1/events/{event_id}/removals/{removal_id}/let-back-in",
    response_model=RemovalOut,
    responses=ERRORS,
    tags=["api"],
)
def let_back_in(session: DB, user: Me, event_id: EventId, removal_id: ItemId) -> RemovalOut:
    """Lift a removal: the person may get a ticket again (and rejoin)."""
    event = events.get_managed(session, event_id, user)
    removal = live.let_back_in(session, event, removal_id, user)
    session.commit()
    return removal_out(session, removal)


@router.post("/events/{event_id}/removals/{removal_id}/let-back-in", include_in_schema=False)
def let_back_in_page(
    session: DB, user: EventPost, event_id: EventId, removal_id: ItemId
) -> Response:
    """The event page's "Let back in" button (signed in, CSRF checked by ``EventPost``)."""
    event = events.get_managed(session, event_id, user)
    live.let_back_in(session, event, removal_id, user)
    session.commit()
    return RedirectResponse(f"/events/{event.id}?done=let_back_in", status_code=303)


@router.post("/j/{link}/ticket", include_in_schema=False)
def guest_ticket(
    request: Request, session: DB, link: Annotated[str, Path(max_length=64)]
) -> Response:
    """A join ticket for the guest of a personal link; a new one replaces the last one."""
    registration, event = context_of(request).registration_of_link(session, link)
    if registration.status != "registered":
        raise EventError(403, "registration_revoked", "this registration was revoked")
    return join_ticket(request, session, event, None, registration=registration)
