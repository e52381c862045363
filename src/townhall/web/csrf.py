"""Form tokens against cross-site requests, bound to the sign-in they were made for.

A signed double-submit token (OWASP's "signed double-submit cookie"): the
token is ``<nonce>.<MAC(nonce, session key)>``, set as an HttpOnly,
SameSite=Strict cookie and written into every form; a post is accepted when
the form's token equals the cookie's and its MAC matches the sign-in of the
request (``Viewer.session_key``). A token taken from another session, or
planted by a sibling host before the victim signed in, is refused, and so is
a form from another site (it cannot read the cookie). Pages call
``csrf_token`` to get the token for their forms; ``CheckedForm`` (``deps``)
checks it. Over HTTPS the cookie is ``__Host-townhall_csrf`` (``shell``).
"""

from __future__ import annotations

import re
import secrets

from fastapi import Request
from fastapi.responses import Response

from townhall.web.errors import WebError
from townhall.web.shell import Person, Viewer, WebShell, shell_of

CSRF_COOKIE = "townhall_csrf"
MAX_TOKEN = 100
_TOKEN = re.compile(r"([A-Za-z0-9_-]{24})\.([0-9a-f]{32})")


def _binding(viewer: Viewer[Person] | None) -> str:
    if viewer is None or viewer.user is None:
        return "anonymous"
    return f"{viewer.via}:{viewer.session_key}"


def _viewer_of(request: Request) -> Viewer[Person] | None:
    viewer = getattr(request.state, "viewer", None)
    return viewer if isinstance(viewer, Viewer) else None


def make_token(shell: WebShell, viewer: Viewer[Person] | None) -> str:
    nonce = secrets.token_urlsafe(18)
    return f"{nonce}.{shell.sign('csrf', nonce + ':' + _binding(viewer))}"


def token_holds(shell: WebShell, token: str, viewer: Viewer[Person] | None) -> bool:
    """True when ``token`` is well-formed and was made for this viewer's sign-in."""
    match = _TOKEN.fullmatch(token)
    if match is None:
        return False
    nonce, mac = match.groups()
    expected = shell.sign("csrf", nonce + ":" + _binding(viewer))
    return secrets.compare_digest(expected.encode(), mac.encode())


def csrf_token(request: Request) -> str:
    """The token for this page's forms: the cookie's when it holds, else a new one."""
    shell = shell_of(request)
    viewer = _viewer_of(request)
    existing = request.cookies.get(shell.cookie_name(CSRF_COOKIE), "")
    if token_holds(shell, existing, viewer):
        return existing
    token = getattr(request.state, "new_csrf", None)
    if not isinstance(token, str):
        token = make_token(shell, viewer)
        request.state.new_csrf = token
    return token


def set_csrf_cookie(request: Request, response: Response, value: str | None = None) -> None:
    """Set the token chosen by ``csrf_token`` (or ``value``) on the response, if new."""
    value = value or getattr(request.state, "new_csrf", None)
    if value:
        shell = shell_of(request)
        response.set_cookie(
            shell.cookie_name(CSRF_COOKIE),
            value,
            httponly=True,
            samesite="strict",
            secure=shell.https,
            path="/",
        )


def check_csrf(request: Request, submitted: str, viewer: Viewer[Person] | None = None) -> None:
    """Refuse a post whose token is missing, not the cookie's, or made for another sign-in."""
    shell = shell_of(request)
    expected = request.cookies.get(shell.cookie_name(CSRF_COOKIE), "")
    if (
        not expected
        or len(submitted) > MAX_TOKEN
        or not secrets.compare_digest(expected.encode(), submitted.encode())
        or not token_holds(shell, submitted, viewer if viewer is not None else _viewer_of(request))
    ):
        raise WebError(
            403, "csrf_failed", "the form is stale or came from another site; reload and retry"
        )
