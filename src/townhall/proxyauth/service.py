"""``townhall proxy-auth``: the sign-in service behind nginx's ``auth_request``.

nginx cannot check a password itself: for every request it asks this service
(``GET /sso/auth``) whether the browser's session cookie is good, and puts the
user it answers with into ``X-Remote-User`` for the Center. A request without
a good session gets the sign-in page (``/sso/login``), whose form is checked
against the directory (``townhall.proxyauth.ldap``); a POST to ``/sso/logout``
ends the session (a GET only shows the sign-out button). Sessions live in this
process's memory only: a restart signs every user out, and signing out ends
the session everywhere, including copies of the cookie that join tickets
carry. Passwords are never logged nor kept.

Both forms refuse posts from other sites: the browser's ``Origin``, when
sent, must be this site, and each form carries a token that only a page of
this service can give, bound to a cookie (the pre-sign-in cookie for the
sign-in form, the session cookie for the sign-out form). Without that, any
site could sign a visitor into the attacker's account (login CSRF) or out.
``deploy/reverse-proxy/nginx/townhall.conf`` and ``docs/reverse-proxy.md``
show how it is wired.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import logging
import re
import secrets
import threading
import time
import unicodedata
from dataclasses import dataclass
from urllib.parse import quote

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route

from townhall.proxyauth.ldap import Entry, LdapConnection, LdapError, LdapServer

log = logging.getLogger("townhall.proxyauth")

# The Center's user name alphabet (townhall.center.accounts.USERNAME_PATTERN).
_USERNAME = re.compile(r"[A-Za-z0-9._@+-]{1,128}")
MAX_SESSIONS = 100_000
MAX_FIELD = 1024
# The pre-sign-in cookie: random, and only ever compared through an HMAC.
_FORM_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True, slots=True)
class ProxyAuthConfig:
    """Where the directory is and how users and groups are found in it."""

    ldap: LdapServer
    base_dn: str
    user_attribute: str = "uid"
    user_object_class: str = "inetOrgPerson"
    bind_dn: str = ""
    bind_password: str = ""
    mail_attribute: str = "mail"
    name_attribute: str = "cn"
    group_base_dn: str = ""
    group_object_class: str = "groupOfNames"
    group_member_attribute: str = "member"
    group_name_attribute: str = "cn"
    cookie_name: str = "townhall_proxy"
    cookie_secure: bool = True
    session_seconds: int = 8 * 3600
    failure_delay: float = 1.0
    prefix: str = "/sso"


@dataclass(frozen=True, slots=True)
class Identity:
    username: str
    email: str
    display_name: str
    groups: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Session:
    identity: Identity
    expires: float


class SessionStore:
    """Random session tokens to identities, in memory, with an absolute expiry."""

    def __init__(self, seconds: int) -> None:
        self._seconds = seconds
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()

    def open(self, identity: Identity, now: float) -> str:
        token = secrets.token_urlsafe(32)
        with self._lock:
            if len(self._sessions) >= MAX_SESSIONS:
                self._prune(now)
            if len(self._sessions) >= MAX_SESSIONS:  # still full: drop the oldest
                oldest = min(self._sessions, key=lambda key: self._sessions[key].expires)
                del self._sessions[oldest]
            self._sessions[token] = _Session(identity, now + self._seconds)
        return token

    def find(self, token: str, now: float) -> Identity | None:
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires <= now:
                del self._sessions[token]
                return None
            return session.identity

    def close(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def _prune(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if s.expires <= now]:
            del self._sessions[key]


# --- the directory ------------------------------------------------------------------------


def _clean(value: str | None, limit: int = 256) -> str:
    """A directory value fit for an HTTP header: no control characters, bounded."""
    if not value or len(value) > limit:
        return ""
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        return ""
    return value.strip()


def check_password(config: ProxyAuthConfig, username: str, password: str) -> Identity | None:
    """The directory's identity for a good user name and password, else None.

    Raises LdapError when the directory cannot be asked (that is not a wrong
    password, and the page says so).
    """
    if not _USERNAME.fullmatch(username) or not password or len(password) > MAX_FIELD:
        return None
    pairs = [(config.user_attribute, username)]
    if config.user_object_class:
        pairs.insert(0, ("objectClass", config.user_object_class))
    wanted = [config.user_attribute, config.mail_attribute, config.name_attribute]
    with LdapConnection(config.ldap) as connection:
        if config.bind_dn and not connection.bind(config.bind_dn, config.bind_password):
            raise LdapError("the directory refused the service account (bind_dn)")
        entries = connection.search(config.base_dn, pairs, wanted, size_limit=2)
        if len(entries) != 1:
            if len(entries) > 1:
                log.warning("%d directory entries match user %r: refused", len(entries), username)
            return None
        entry = entries[0]
        groups = _groups(config, connection, entry) if config.group_base_dn else ()
        if not connection.bind(entry.dn, password):
            return None
    name = entry.first(config.user_attribute) or username
    if not _USERNAME.fullmatch(name):
        log.warning("directory user %r cannot be a Townhall user name: refused", name)
        return None
    email = _clean(entry.first(config.mail_attribute))
    return Identity(
        username=name,
        email="" if "," in email else email,
        display_name=_clean(entry.first(config.name_attribute)),
        groups=groups,
    )


def _groups(config: ProxyAuthConfig, connection: LdapConnection, entry: Entry) -> tuple[str, ...]:
    pairs = [(config.group_member_attribute, entry.dn)]
    if config.group_object_class:
        pairs.insert(0, ("objectClass", config.group_object_class))
    found = connection.search(config.group_base_dn, pairs, [config.group_name_attribute])
    names = (_clean(group.first(config.group_name_attribute)) for group in found)
    return tuple(sorted({n for n in names if n and "," not in n and ";" not in n}))


# --- pages ----------------------------------------------------------------------------------

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>{title} - Townhall</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 26rem; margin: 4rem auto;
         padding: 0 1rem; }}
  label {{ display: block; margin: 1rem 0 .25rem; }}
  input {{ width: 100%; padding: .5rem; box-sizing: border-box; }}
  button {{ margin-top: 1.25rem; padding: .5rem 1.5rem; }}
  .error {{ color: #a00; }}
</style>
</head>
<body>
<main>
<h1>{title}</h1>
{body}
</main>
</body>
</html>
"""

_FORM = """{message}
<form method="post" action="{action}" data-townhall-proxy-login="townhall">
  <label for="username">User name</label>
  <input id="username" name="username" value="{username}" autocomplete="username"
         required autofocus>
  <label for="password">Password</label>
  <input id="password" type="password" name="password" autocomplete="current-password" required>
  <input type="hidden" name="rd" value="{rd}">
  <input type="hidden" name="csrf" value="{csrf}">
  <button type="submit">Sign in</button>
</form>
"""

_SIGN_OUT_FORM = """<form method="post" action="{action}">
  <input type="hidden" name="csrf" value="{csrf}">
  <button type="submit">Sign out</button>
</form>
"""


def _page(title: str, body: str, status: int) -> HTMLResponse:
    response = HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    return response


def safe_target(value: str, prefix: str) -> str | None:
    """A path on this site to go back to after sign-in, or None.

    Never another site (``//host``, ``/\\host``, ``https://...``): that would
    make the sign-in page an open redirect; never the sign-in pages themselves.
    """
    if not value or len(value) > 2000 or not value.startswith("/"):
        return None
    if value[1:2] in ("/", "\\") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in value):
        return None
    if value == prefix or value.startswith(prefix + "/"):
        return None
    return value


class ProxyAuth:
    """The service: its configuration, its sessions and its Starlette app."""

    def __init__(self, config: ProxyAuthConfig) -> None:
        self.config = config
        self.sessions = SessionStore(config.session_seconds)
        prefix = config.prefix
        self.app = Starlette(
            routes=[
                Route(f"{prefix}/auth", self.auth, methods=["GET", "HEAD"]),
                Route(f"{prefix}/login", self.login_form, methods=["GET", "HEAD"]),
                Route(f"{prefix}/login", self.login, methods=["POST"]),
                Route(f"{prefix}/logout", self.logout_form, methods=["GET", "HEAD"]),
                Route(f"{prefix}/logout", self.logout, methods=["POST"]),
            ]
        )
        # Signs the forms' tokens; per process, like the sessions themselves.
        self._form_key = secrets.token_bytes(32)

    @property
    def form_cookie(self) -> str:
        """The pre-sign-in cookie, which the sign-in form's token is bound to."""
        return self.config.cookie_name + "_form"

    def _token(self, purpose: str, binding: str) -> str:
        mac = hmac.new(self._form_key, f"{purpose}\0{binding}".encode(), hashlib.sha256)
        return base64.urlsafe_b64encode(mac.digest()).decode().rstrip("=")

    def _token_is_good(self, purpose: str, binding: str, submitted: str) -> bool:
        return bool(binding) and hmac.compare_digest(
            self._token(purpose, binding).encode(), submitted.encode()[:100]
        )

    def _from_this_site(self, request: Request) -> bool:
        """False when the browser says the form was posted from another origin.

        Browsers send ``Origin`` on every POST; a client that sends none (a
        program) is held by the token alone. ``null`` (a sandboxed frame, a
        redirect across sites) is another site.
        """
        origin = request.headers.get("origin")
        if origin is None:
            return True
        scheme = request.headers.get("x-forwarded-proto", request.url.scheme).lower()
        host = request.headers.get("host", "").lower()
        default = {"https": ":443", "http": ":80"}.get(scheme, "")
        if default and host.endswith(default):
            host = host[: -len(default)]
        return bool(host) and origin.lower() == f"{scheme}://{host}"

    def _identity(self, request: Request) -> Identity | None:
        token = request.cookies.get(self.config.cookie_name, "")
        if not token or len(token) > 100:
            return None
        return self.sessions.find(token, time.time())

    async def auth(self, request: Request) -> Response:
        """nginx's subrequest: 200 and the identity headers, or 401."""
        identity = self._identity(request)
        if identity is None:
            original = request.headers.get("x-original-uri", "")
            path = original.split("?", 1)[0]
            bearer = request.headers.get("authorization", "")[:7].lower() == "bearer "
            if bearer and (path.startswith("/api/") or path.startswith("/manager/api/")):
                # An API token: the Center checks it; nobody is named to it here.
                return Response(status_code=200)
            return Response(status_code=401)
        response = Response(status_code=200)
        response.raw_headers.append((b"x-auth-user", identity.username.encode()))
        for name, value in (
            (b"x-auth-email", identity.email),
            (b"x-auth-name", identity.display_name),
            (b"x-auth-groups", ",".join(identity.groups)),
        ):
            if value:
                response.raw_headers.append((name, value.encode("utf-8")))
        return response

    def _target(self, request: Request, submitted: str = "") -> str:
        prefix = self.config.prefix
        return (
            safe_target(submitted, prefix)
            or safe_target(request.headers.get("x-original-uri", ""), prefix)
            or safe_target(request.query_params.get("rd", ""), prefix)
            or "/"
        )

    def _form(
        self, request: Request, rd: str, *, username: str = "", error: str = "", status: int
    ) -> Response:
        binding = request.cookies.get(self.form_cookie, "")
        fresh = not _FORM_COOKIE_VALUE.fullmatch(binding)
        if fresh:
            binding = secrets.token_urlsafe(32)
        message = (
            f'<p class="error" role="alert">{html.escape(error)}</p>'
            if error
            else "<p>Sign in with your organisation's account.</p>"
        )
        body = _FORM.format(
            message=message,
            action=html.escape(f"{self.config.prefix}/login"),
            username=html.escape(username),
            rd=html.escape(rd),
            csrf=self._token("sign-in", binding),
        )
        response = _page("Sign in to Townhall", body, status)
        if fresh:
            response.set_cookie(
                self.form_cookie,
                binding,
                path=self.config.prefix,
                secure=self.config.cookie_secure,
                httponly=True,
                samesite="lax",
            )
        return response

    async def login_form(self, request: Request) -> Response:
        # nginx shows this page in place of any page asked for without a
        # session (error_page 401, keeping $request_uri), and at /sso/login.
        original = request.headers.get("x-original-uri", "")
        instead_of_a_page = original.startswith("/") and not original.startswith(
            self.config.prefix + "/"
        )
        return self._form(request, self._target(request), status=401 if instead_of_a_page else 200)

    async def login(self, request: Request) -> Response:
        async with request.form(max_files=0, max_fields=10) as form:
            username = str(form.get("username", ""))[:MAX_FIELD].strip()
            password = str(form.get("password", ""))[:MAX_FIELD]
            rd = self._target(request, str(form.get("rd", "")))
            csrf = str(form.get("csrf", ""))
        peer = request.client.host if request.client else "?"
        binding = request.cookies.get(self.form_cookie, "")
        if not self._from_this_site(request) or not self._token_is_good("sign-in", binding, csrf):
            log.warning(
                "sign-in form for %r refused: posted from another site or without this "
                "page's token (Origin %r, via %s)",
                username[:128],
                request.headers.get("origin", "")[:200],
                peer,
            )
            return self._form(
                request,
                rd,
                error="This sign-in form did not come from this site, or has expired: "
                "sign in again here.",
                status=403,
            )
        try:
            identity = await run_in_threadpool(check_password, self.config, username, password)
        except LdapError as error:
            log.error("sign-in of %r failed: the directory could not be asked: %s", username, error)
            return self._form(
                request,
                rd,
                username=username,
                error="The directory cannot be reached; try again in a moment.",
                status=503,
            )
        if identity is None:
            log.info("failed sign-in for %r (via %s)", username[:128], peer)
            if self.config.failure_delay > 0:
                await asyncio.sleep(self.config.failure_delay)
            return self._form(
                request, rd, username=username, error="Wrong user name or password.", status=401
            )
        old = request.cookies.get(self.config.cookie_name, "")
        if old:
            self.sessions.close(old)
        token = self.sessions.open(identity, time.time())
        log.info("%s signed in (via %s)", identity.username, peer)
        response = RedirectResponse(rd, status_code=303)
        response.set_cookie(
            self.config.cookie_name,
            token,
            max_age=self.config.session_seconds,
            path="/",
            secure=self.config.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        response.headers["Cache-Control"] = "no-store"
        return response

    async def logout_form(self, request: Request) -> Response:
        """The sign-out button: a GET never signs out (a link or image on any site could)."""
        if self._identity(request) is None:
            again = html.escape(f"{self.config.prefix}/login?rd={quote('/')}")
            return _page(
                "Sign out", f'<p>You are not signed in. <a href="{again}">Sign in</a>.</p>', 200
            )
        return self._sign_out_page(request, "<p>Sign out of Townhall on this browser?</p>", 200)

    def _sign_out_page(self, request: Request, message: str, status: int) -> Response:
        body = message + _SIGN_OUT_FORM.format(
            action=html.escape(f"{self.config.prefix}/logout"),
            csrf=self._token("sign-out", request.cookies.get(self.config.cookie_name, "")),
        )
        return _page("Sign out", body, status)

    async def logout(self, request: Request) -> Response:
        token = request.cookies.get(self.config.cookie_name, "")
        identity = self._identity(request)
        if identity is not None:
            async with request.form(max_files=0, max_fields=10) as form:
                csrf = str(form.get("csrf", ""))
            if not self._from_this_site(request) or not self._token_is_good(
                "sign-out", token, csrf
            ):
                log.warning(
                    "sign-out of %s refused: posted from another site or without the token",
                    identity.username,
                )
                return self._sign_out_page(
                    request,
                    '<p class="error" role="alert">This sign-out did not come from this '
                    "site: you are still signed in. Sign out here if you meant to.</p>",
                    403,
                )
            self.sessions.close(token)
            log.info("%s signed out", identity.username)
        again = html.escape(f"{self.config.prefix}/login?rd={quote('/')}")
        response = _page(
            "Signed out",
            f'<p>You are signed out of Townhall. <a href="{again}">Sign in again</a>.</p>',
            200,
        )
        response.delete_cookie(
            self.config.cookie_name,
            path="/",
            secure=self.config.cookie_secure,
            httponly=True,
            samesite="lax",
        )
        return response
