"""Sign-in and sign-out with a password; SSO users sign in and out at the proxy.

Password sign-in opens a portal session (``accounts.open_session``) in an
HttpOnly cookie (``__Host-townhall_session`` over HTTPS) and gives the
browser a new CSRF token bound to that session (``web.csrf``). An SSO user
never gets a session of their own (``center.auth``).
"""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from townhall.center import accounts, throttle
from townhall.center.auth import SESSION_COOKIE, client_address, context_of
from townhall.center.pages.common import FormViewer, Who, render
from townhall.store.conventions import now_utc
from townhall.web.csrf import make_token, set_csrf_cookie
from townhall.web.deps import DB
from townhall.web.errors import redirect, safe_next
from townhall.web.shell import Viewer, shell_of

log = logging.getLogger("townhall.center.pages")

router = APIRouter(include_in_schema=False)


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
    # Throttled before the password is even checked (center/throttle.py).
    rules, peer = throttle.ThrottleRules.of(context_of(request).settings), client_address(request)
    wait = throttle.wait_seconds(session, rules, username, peer, now_utc())
    if wait:
        log.warning("throttled password sign-in for %r from %s", username[:128], peer)
        error = f"Too many failed sign-ins. Try again in {wait} seconds."
        context = {"next": target, "username": username, "error": error}
        response = render(request, "login.html", context, status=429)
        response.headers["retry-after"] = str(wait)
        return response
    user = accounts.user_by_name(session, username.strip())
    if user is None:
        accounts.hash_password(password)  # as slow as a real check: names are not probed cheaply
        ok = False
    else:
        ok = accounts.check_password(user, password)
    if user is None or not ok:
        log.info("failed password sign-in for %r from %s", username[:128], peer)
        throttle.record_failure(session, rules, username, peer, now_utc())
        context = {"next": target, "username": username, "error": "Wrong username or password."}
        return render(request, "login.html", context, status=401)
    throttle.record_success(session, username, peer)
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
