"""Who is asking: the reverse proxy's SSO header, an API token, or a portal session.

Order of trust, first match wins: a header (or signed assertion) from a
trusted proxy, then ``Authorization: Bearer``, then the portal's session
cookie. An SSO user is never given a Center session of its own: identity is
re-read from the proxy on every request, so signing out at the proxy signs
out of the Center. ``identify`` is what the web shell calls for every
component (``townhall.web.shell.Identify``); the proof that a write comes
from our own pages (CSRF token, JSON body) is the shell's (``web.csrf``,
``web.deps``), bound to the ``session_key`` given here.
"""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import TypeAlias

from fastapi import Request
from sqlalchemy.orm import Session

from townhall.center import accounts
from townhall.center.context import CenterContext
from townhall.center.sso import SsoIdentity, SsoRefused
from townhall.center.tables import User
from townhall.store import will_write
from townhall.web.errors import WebError
from townhall.web.shell import Viewer, shell_of

# Over HTTPS the cookie is __Host-townhall_session (``WebShell.cookie_name``).
SESSION_COOKIE = "townhall_session"
log = logging.getLogger("townhall.center.auth")

CenterViewer: TypeAlias = Viewer[User]


class AuthError(WebError):
    """Who is asking could not be established, or may not do this."""


def context_of(request: Request) -> CenterContext:
    return request.app.state.center  # type: ignore[no-any-return]


def client_address(request: Request) -> str:
    """The address of whoever is asking, for limits and logs (never for trust).

    Behind a trusted proxy, the last ``X-Forwarded-For`` entry (the one the
    proxy itself appended); from anyone else, the peer address alone.
    """
    peer = request.client.host if request.client else ""
    if context_of(request).settings.center.sso.trusts(peer):
        forwarded = request.headers.get("x-forwarded-for", "")[-1000:]
        last = forwarded.rpartition(",")[2].strip()
        try:
            return str(ipaddress.ip_address(last))
        except ValueError:
            pass
    return peer[:64] or "unknown"


def _sso_email(session: Session, identity: SsoIdentity, user: User | None) -> str | None:
    """The proxy's email for ``user`` (None: a new account), or None when it must not be used.

    It fills an account only while no other account holds it (otherwise it is
    refused and logged), and never a local account's; docs/sso.md, "Email
    addresses".
    """
    email = (identity.email or "").strip().lower()
    if not email or not accounts.valid_email(email):
        return None
    if user is not None and user.source != "sso":
        return None
    holder = accounts.user_by_email(session, email)
    if holder is not None and (user is None or holder.id != user.id):
        log.warning(
            "the proxy named %s with the email %s, which account %s holds: not used",
            identity.username,
            email,
            holder.username,
        )
        return None
    return email


def _sso_user(session: Session, ctx: CenterContext, identity: SsoIdentity) -> User:
    user = accounts.user_by_name(session, identity.username)
    sso = ctx.settings.center.sso
    if user is None:
        if not sso.auto_create_users:
            raise AuthError(
                403,
                "sso_user_unknown",
                f"{identity.username} signed in at the proxy but has no Townhall account; "
                "ask an administrator",
            )
        will_write(session)
        made = _new_sso_user(session, identity, sso.trust_email)
        if made is not None:
            return made
        # Another request of this person, in another process, made the account meanwhile.
        user = accounts.user_by_name(session, identity.username)
        if user is None:  # and it is gone again already
            raise AuthError(409, "sso_user_conflict", "the account changed meanwhile; try again")
    if not user.active:
        raise AuthError(403, "account_disabled", "this account is disabled")
    changed = False
    email = _sso_email(session, identity, user)
    if email is not None and (email != user.email or user.email_verified != sso.trust_email):
        user.email, user.email_verified, changed = email, sso.trust_email, True
    if identity.display_name and identity.display_name[:200] != user.display_name:
        user.display_name, changed = identity.display_name[:200], True
    if identity.role and identity.role != user.role and user.source == "sso":
        user.role, changed = identity.role, True
    if changed:
        will_write(session)
        session.commit()
    return user


def _new_sso_user(session: Session, identity: SsoIdentity, trust_email: bool) -> User | None:
    """The new account of ``identity``, committed; None when another request made one with
    its name meanwhile (``accounts.create_proxy_user``)."""
    email = _sso_email(session, identity, None)
    # A second try goes without the email: not the name but the email was taken meanwhile,
    # and ``_sso_email`` would now say so.
    for offered in (email, None) if email is not None else (None,):
        user = accounts.create_proxy_user(
            session,
            identity.username,
            email=offered,
            role=identity.role or "member",
            display_name=(identity.display_name or "")[:200],
            email_verified=trust_email,
        )
        if user is not None or accounts.user_by_name(session, identity.username) is not None:
            break
    session.commit()
    if user is not None:
        log.info("created SSO user %s", identity.username)
    return user


def identify(request: Request, session: Session) -> CenterViewer:
    ctx = context_of(request)
    peer = request.client.host if request.client else None
    try:
        identity = ctx.sso.identify(peer, request.scope["headers"], time.time())
    except SsoRefused as refused:
        raise AuthError(400, refused.code, refused.message) from refused
    if identity is not None:
        user = _sso_user(session, ctx, identity)
        return Viewer(user, "sso", user.username)
    authorization = request.headers.get("authorization", "")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer":
            raise AuthError(401, "bad_authorization", "only Bearer tokens are accepted")
        token_user = accounts.user_for_token(session, value.strip())
        if token_user is None:
            raise AuthError(401, "bad_token", "the API token is unknown or revoked")
        if session.dirty:  # last_used_at moved on (at most once a minute)
            session.commit()
        return Viewer(token_user, "token", str(token_user.id))
    cookie = request.cookies.get(shell_of(request).cookie_name(SESSION_COOKIE), "")
    if cookie:
        signed_in = accounts.session_user(session, cookie)
        if signed_in is not None:
            user, session_id = signed_in
            return Viewer(user, "session", str(session_id))
    return Viewer(None, "anonymous")
