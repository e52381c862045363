"""What every area of the portal shares: the Center's templates, notices, who may ask.

``PAGES`` renders the Center's templates in the web shell's frame. The
dependency aliases say in a route's signature who may ask it, so no route
repeats a sign-in or CSRF preamble: ``SignedInUser`` (a page for signed-in
users; others are sent to sign in and back), ``EventPost`` and
``AccountPost`` (a form posted from an event page or the account page: CSRF
checked first, then sign-in, coming back to that page), ``AdminPage`` and
``AdminPost`` (administrators only); ``FormViewer`` checks only the CSRF
token (the sign-in form itself). All are ``townhall.web.deps.SignedIn``
typed with the Center's ``User``; ``signed_in_user`` is ``SignedInUser`` for the
hot pages that ask inside their own thread hop (``web.deps.in_one_hop``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from pydantic import ValidationError
from sqlalchemy.orm import Session

from townhall.center.auth import CenterViewer
from townhall.center.tables import User
from townhall.web.deps import SignedIn, checked_form, page_viewer, signed_in
from townhall.web.render import Pages

CENTER = Path(__file__).parent.parent
PAGES = Pages(CENTER / "templates")
render = PAGES.render
PAGE_SIZE = 50
NOT_ADMIN = "only administrators may see this page"

# Short confirmations after a redirect: the query names one, the text is ours,
# so nothing a link carries is ever shown.
NOTICES = {
    "recording-deleted": "The recording is deleted.",
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
    "let_back_in": "The person may join again.",
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


def signed_in_user(request: Request, session: Session) -> User:
    """``SignedInUser`` for a page that runs ``web.deps.in_one_hop``."""
    user = signed_in(request, session)
    if not isinstance(user, User):
        raise TypeError("the web shell's identify answered someone not a Center user")
    return user


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
