"""Talking to a Center's API from the desktop, through the organisation's reverse proxy.

The spec's Outlook add-in "takes the role of a web client and displays the
user the authentication request (HTML) page that returns from the RP", then
sends the proxy's token with every request. ``CenterSession`` does that for
the command line: an API call that comes back as an HTML page with a password
form is the proxy's sign-in page (the Center's API only ever answers JSON);
the session fills in the form's user name and password (asked on the
terminal, or read from standard input), posts it where the form says, keeps
the cookies the proxy sets in ``Store`` until they expire, and repeats the
call. With an API token it sends ``Authorization: Bearer`` and never signs
in. The form is read with the standard library's HTML parser: hidden fields
are posted back as they came, so any proxy with a plain HTML form works.
"""

from __future__ import annotations

import getpass
import ssl
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from townhall.desktop.store import (
    CenterEntry,
    DesktopError,
    Store,
    dump_from,
    load_into,
    normalize_url,
)

MAX_LOGIN_PAGE = 256 * 1024
USER_AGENT = "townhall-desktop/1"

# Asked for the password: (Center URL, user name) -> password.
PasswordSource = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class LoginForm:
    """A sign-in form found on a page: where it posts and what it holds."""

    action: str
    method: str
    fields: tuple[tuple[str, str], ...]
    username_field: str
    password_field: str

    def filled(self, username: str, password: str) -> list[tuple[str, str]]:
        data = []
        for name, value in self.fields:
            if name == self.username_field:
                data.append((name, username))
            elif name == self.password_field:
                data.append((name, password))
            else:
                data.append((name, value))
        return data


@dataclass
class _Form:
    action: str
    method: str
    inputs: list[dict[str, str]] = field(default_factory=list)


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[_Form] = []
        self._current: _Form | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name.lower(): value or "" for name, value in attrs}
        if tag == "form":
            self._current = _Form(
                attributes.get("action", ""), attributes.get("method", "get").lower()
            )
            self.forms.append(self._current)
        elif tag == "input" and self._current is not None:
            self._current.inputs.append(attributes)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._current = None


def find_login_form(page: str, page_url: str) -> LoginForm | None:
    """The first form with a password field, with its user name field; None if none."""
    parser = _FormParser()
    parser.feed(page[:MAX_LOGIN_PAGE])
    parser.close()
    for form in parser.forms:
        password = next(
            (i for i in form.inputs if i.get("type", "").lower() == "password" and i.get("name")),
            None,
        )
        if password is None:
            continue
        username = next(
            (
                i
                for i in form.inputs
                if i.get("type", "text").lower() in ("text", "email", "")
                and i.get("name")
                and i is not password
            ),
            None,
        )
        if username is None:
            continue
        fields = tuple(
            (i["name"], i.get("value", ""))
            for i in form.inputs
            if i.get("name")
            and i.get("type", "text").lower() not in ("submit", "button", "image", "reset", "file")
            and (i.get("type", "").lower() not in ("checkbox", "radio") or "checked" in i)
        )
        return LoginForm(
            action=urljoin(page_url, form.action or page_url),
            method=form.method if form.method in ("get", "post") else "post",
            fields=fields,
            username_field=username["name"],
            password_field=password["name"],
        )
    return None


def login_form_of(response: httpx.Response) -> LoginForm | None:
    """The proxy's sign-in form, if this response is one (HTML with a password field)."""
    content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in ("text/html", "application/xhtml+xml"):
        return None
    return find_login_form(response.text, str(response.url))


def terminal_password(url: str, username: str) -> str:
    """Ask on the terminal, without echo; refuse when there is no terminal to ask on."""
    if not sys.stdin.isatty():
        raise DesktopError(
            f"{url} wants a sign-in at its proxy and there is no terminal to ask the "
            "password on: use --password-stdin, or an API token (--token)"
        )
    return getpass.getpass(f"Password for {username} at {url}: ")


def stdin_password() -> PasswordSource:
    """Read the password once from standard input (``--password-stdin``) and reuse it."""
    cache: list[str] = []

    def read(url: str, username: str) -> str:
        if not cache:
            cache.append(sys.stdin.readline().rstrip("\r\n"))
        return cache[0]

    return read


class CenterSession:
    """An HTTP client for one Center's API that signs in at its proxy when asked."""

    def __init__(
        self,
        url: str,
        *,
        store: Store | None = None,
        token: str = "",
        username: str = "",
        ca_file: str = "",
        password: PasswordSource = terminal_password,
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.url = normalize_url(url)
        self.store = store or Store()
        entry = self.store.center(self.url) or CenterEntry(self.url)
        self.entry = entry
        self.token = token or entry.token
        self.username = username or entry.username
        self._password = password
        trusted = ca_file or entry.ca_file
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=trusted) if trusted else True
        )
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        self.client = httpx.Client(
            base_url=self.url,
            headers=headers,
            verify=verify,
            timeout=timeout,
            follow_redirects=True,
            transport=transport,
        )
        if not self.token:
            load_into(self.client.cookies.jar, self.store.cookies(self.url))

    def __enter__(self) -> CenterSession:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.client.close()

    # --- calls -----------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
        accept: str = "application/json",
    ) -> httpx.Response:
        response = self._send(method, path, json=json, params=params, accept=accept)
        form = login_form_of(response)
        if form is not None:
            if self.token:
                raise DesktopError(
                    f"{self.url} answered with a sign-in page although an API token was sent: "
                    "the proxy does not let tokens through (docs/reverse-proxy.md)"
                )
            # The proxy stopped the call before the Center saw it: sign in, ask again.
            self.sign_in(form)
            response = self._send(method, path, json=json, params=params, accept=accept)
            if login_form_of(response) is not None:
                raise DesktopError(f"{self.url}: still asked to sign in after signing in")
        self._remember()
        return response

    def api(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, str] | None = None,
    ) -> Any:
        """A JSON API call; a 4xx or 5xx answer becomes a DesktopError with the Center's words."""
        response = self.request(method, f"/api/v1{path}", json=json, params=params)
        if response.status_code >= 400:
            raise DesktopError(f"{self.url}: {error_text(response)}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError as error:
            raise DesktopError(f"{self.url} did not answer JSON ({response.url})") from error

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any,
        params: Mapping[str, str] | None,
        accept: str,
    ) -> httpx.Response:
        try:
            return self.client.request(
                method, path, json=json, params=params, headers={"Accept": accept}
            )
        except httpx.HTTPError as error:
            raise DesktopError(f"cannot reach {self.url}: {error}") from error

    # --- the proxy's sign-in ---------------------------------------------------------------

    def sign_in(self, form: LoginForm) -> None:
        # A townhall: link from any web page can name any Center: the password goes
        # only over TLS, and never in a URL (proxy and server logs keep those).
        if urlsplit(form.action).scheme != "https":
            raise DesktopError(f"{self.url}: the sign-in form would send the password unencrypted")
        if form.method == "get":
            raise DesktopError(f"{self.url}: the sign-in form would put the password in its URL")
        username = self.username or _ask_username(self.url)
        password = self._password(self.url, username)
        if not password:
            raise DesktopError("no password given")
        data = form.filled(username, password)
        try:
            response = self.client.post(
                form.action, data=dict(data), headers={"Accept": "text/html"}
            )
        except httpx.HTTPError as error:
            raise DesktopError(f"cannot reach {self.url}: {error}") from error
        if login_form_of(response) is not None:
            self.store.forget_cookies(self.url)
            raise DesktopError(f"{self.url}: the proxy refused user {username}'s password")
        if response.status_code >= 500:
            raise DesktopError(f"{self.url}: the proxy failed to sign in ({response.status_code})")
        self.username = username
        self._remember()

    def _remember(self) -> None:
        if not self.token:
            self.store.save_cookies(self.url, dump_from(self.client.cookies.jar, self.url))

    def sign_out_locally(self) -> None:
        self.client.cookies.clear()
        self.store.forget_cookies(self.url)


def _ask_username(url: str) -> str:
    if not sys.stdin.isatty():
        raise DesktopError(f"{url} wants a sign-in at its proxy: name the user with --user")
    return input(f"User name at {url}: ").strip()


def error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(error, dict) and error.get("message"):
            return f"{error['message']} ({response.status_code})"
        if isinstance(body, dict) and body.get("detail"):
            return f"{body['detail']} ({response.status_code})"
    except ValueError:
        pass
    return f"HTTP {response.status_code} from {response.url}"
