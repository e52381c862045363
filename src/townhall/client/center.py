"""The participant's HTTP calls to the Center, carrying the ticket's reverse-proxy cookies.

The Center usually sits behind a reverse proxy that signs users in and keeps
them signed in with its cookie; the Center captured that cookie into the
ticket so that these calls keep the single sign-on (docs/tickets.md). The
calls: ``event_info`` (``GET /api/v1/events/{id}``), ``dialin_info``
(``GET …/dialin``) and ``new_ticket`` (``POST …/ticket``, for a session that
outlives its ticket). The cookies go in a ``Cookie`` header built here, only
to the ticket's ``center_url`` and never across a redirect (redirects are not
followed); cookies the proxy sets on an answer replace the old ones for the
next call. A redirect or an HTML page where JSON was expected is the proxy
asking to sign in again: ``SignedOutAtProxy``, with a message that says so.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from http.cookies import CookieError, SimpleCookie
from typing import Any, Final

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from townhall.ticket import MEDIA_TYPE, TicketContents, open_ticket
from townhall.wire.names import is_cookie_value

__all__ = ["CenterClient", "CenterError", "SignedOutAtProxy"]

TIMEOUT: Final = 10.0


class CenterError(Exception):
    """A call to the Center failed; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class SignedOutAtProxy(CenterError):
    """The reverse proxy wants the user to sign in again: its cookie is missing or expired."""


class CenterClient:
    """Calls to the Center of one ticket. Use as ``async with CenterClient(ticket) as c``."""

    def __init__(
        self,
        ticket: TicketContents,
        *,
        timeout: float = TIMEOUT,
        verify: ssl.SSLContext | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._ticket = ticket
        self._base = ticket.center_url.rstrip("/")
        self._cookies: dict[str, str] = dict(ticket.cookies)
        self._client = httpx.AsyncClient(
            timeout=timeout,
            follow_redirects=False,
            # The system's trust store, as a browser of this machine would use.
            verify=verify if verify is not None else ssl.create_default_context(),
            transport=transport,
            headers={"User-Agent": "townhall-python/0.1"},
        )

    async def __aenter__(self) -> CenterClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._client.aclose()

    @property
    def cookie_names(self) -> tuple[str, ...]:
        return tuple(self._cookies)

    async def event_info(self) -> dict[str, Any]:
        """The event as the Center's API gives it (title, times, ``live`` state…)."""
        return await self._json("GET", f"/api/v1/events/{self._ticket.event_id}")

    async def dialin_info(self) -> dict[str, Any]:
        """The phone numbers and access code to dial in."""
        return await self._json("GET", f"/api/v1/events/{self._ticket.event_id}/dialin")

    async def new_ticket(self, *, now: int) -> TicketContents:
        """A fresh ticket for the same event, checked as signed by the same Center key."""
        # A JSON body, as the Join button sends: the Center takes cookie- and
        # proxy-authenticated writes only as JSON (a cross-site form cannot be).
        response = await self._request(
            "POST", f"/api/v1/events/{self._ticket.event_id}/ticket", json={}
        )
        kind = response.headers.get("content-type", "").split(";")[0].strip()
        if kind != MEDIA_TYPE:
            self._refuse_html(response)
            raise CenterError(
                f"the Center answered {kind or 'nothing'}, not a ticket", response.status_code
            )
        key = Ed25519PublicKey.from_public_bytes(self._ticket.center_key)
        return open_ticket(response.content, center_public_key=key, now=now)

    # -- inside -------------------------------------------------------------------------

    def _cookie_header(self) -> dict[str, str]:
        if not self._cookies:
            return {}
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self._cookies.items())}

    async def _request(
        self, method: str, path: str, *, json: dict[str, object] | None = None
    ) -> httpx.Response:
        url = self._base + path
        try:
            response = await self._client.request(
                method, url, headers=self._cookie_header(), json=json
            )
        except httpx.TimeoutException as error:
            raise CenterError(f"the Center at {self._base} did not answer in time") from error
        except httpx.HTTPError as error:
            raise CenterError(f"cannot reach the Center at {self._base}: {error}") from error
        self._keep_cookies(response.headers.get_list("set-cookie"))
        if response.is_redirect:
            where = response.headers.get("location", "elsewhere")
            raise SignedOutAtProxy(
                f"signed out at the proxy: the Center's address redirects to {where}; "
                "sign in again in the browser and download a new ticket",
                response.status_code,
            )
        return response

    def _keep_cookies(self, headers: list[str]) -> None:
        """The proxy renews its session cookie on answers: keep the new values (only
        those the ticket carried; a removed one, max-age 0, is dropped)."""
        for header in headers:
            jar: SimpleCookie = SimpleCookie()
            try:
                jar.load(header)
            except CookieError:
                continue
            for name, morsel in jar.items():
                if name not in self._cookies:
                    continue
                if morsel["max-age"] == "0" or not morsel.value:
                    del self._cookies[name]
                # As the ticket admits it (RFC 6265 §4.1.1): nothing that could break the header.
                elif is_cookie_value(morsel.coded_value):
                    self._cookies[name] = morsel.coded_value

    def _refuse_html(self, response: httpx.Response) -> None:
        kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind in ("text/html", "application/xhtml+xml"):
            raise SignedOutAtProxy(
                "signed out at the proxy: the Center's address answers with a web page "
                f"(HTTP {response.status_code}), likely the proxy's sign-in form; sign in "
                "again in the browser and download a new ticket",
                response.status_code,
            )

    async def _json(self, method: str, path: str) -> dict[str, Any]:
        response = await self._request(method, path)
        self._refuse_html(response)
        if response.status_code >= 400:
            raise CenterError(
                f"the Center refused {method} {path}: HTTP {response.status_code} "
                f"{_detail(response)}".rstrip(),
                response.status_code,
            )
        try:
            body = response.json()
        except ValueError as error:
            raise CenterError(
                f"the Center's answer to {path} is not JSON", response.status_code
            ) from error
        if not isinstance(body, Mapping):
            raise CenterError(
                f"the Center's answer to {path} is not a JSON object", response.status_code
            )
        return dict(body)


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    if isinstance(body, Mapping):
        detail = body.get("detail")
        if isinstance(detail, str):
            return f"({detail[:200]})"
    return ""
