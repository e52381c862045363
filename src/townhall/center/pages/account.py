"""The account page: how one is signed in, one's time zone, one's API tokens.

A new token is shown once, on a page no cache may keep; only its digest is
stored (``accounts.create_token``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from townhall.center import accounts, events
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import AccountPost, SignedInUser, notice, render
from townhall.center.tables import User
from townhall.web.deps import DB, Done, ItemId
from townhall.web.errors import redirect

router = APIRouter(include_in_schema=False)


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
