"""The participant's HTTP calls to the Center carry the ticket's cookies; a proxy's sign-in
page or redirect is reported as being signed out at the proxy."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.client.client_support import Issuer
from townhall.client.center import CenterClient, CenterError, SignedOutAtProxy
from townhall.ticket import MEDIA_TYPE, ServerEntry, TicketContents, Zone

SESSION = "_proxy_session"


class FakeProxy(ThreadingHTTPServer):
    """A reverse proxy in front of a Center: with its session cookie the API answers,
    without it the proxy redirects to its sign-in page (or shows it, ``login_page``)."""

    def __init__(self, issuer: Issuer) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.issuer = issuer
        self.good = "s3cret-1"
        self.renewed: str | None = None
        self.login_page = False
        self.cookie_headers: list[str | None] = []
        self.ticket_for: TicketContents | None = None


class Handler(BaseHTTPRequestHandler):
    server: FakeProxy

    def log_message(self, *_: object) -> None:
        pass

    def _send(self, status: int, body: bytes, kind: str, **headers: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.end_headers()
        self.wfile.write(body)

    def _signed_in(self) -> bool:
        header = self.headers.get("Cookie")
        self.server.cookie_headers.append(header)
        cookies = dict(part.strip().split("=", 1) for part in (header or "").split(";") if part)
        if cookies.get(SESSION) in {self.server.good, self.server.renewed} - {None}:
            return True
        if self.server.login_page:
            page = b"<!doctype html><form method=post action=/login>Password</form>"
            self._send(200, page, "text/html; charset=utf-8")
        else:
            self._send(302, b"", "text/plain", Location="https://proxy.test/login?next=/")
        return False

    def do_GET(self) -> None:
        if not self._signed_in():
            return
        renew = {}
        if self.server.renewed:
            renew = {"Set_Cookie": f"{SESSION}={self.server.renewed}; Path=/; HttpOnly"}
        if self.path == "/center/api/v1/events/42":
            body = {"id": 42, "title": "All hands", "live": {"state": "ready", "servers": []}}
            self._send(200, json.dumps(body).encode(), "application/json", **renew)
        elif self.path == "/center/api/v1/events/42/dialin":
            body = {"numbers": ["+41 44 000 00 00"], "access_code": "12345678"}
            self._send(200, json.dumps(body).encode(), "application/json", **renew)
        else:
            self._send(404, b'{"detail": "no such event"}', "application/json")

    def do_POST(self) -> None:
        if not self._signed_in():
            return
        if self.path == "/center/api/v1/events/42/ticket" and self.server.ticket_for:
            issuer = self.server.issuer
            data = issuer.ticket_bytes(issuer.credential("ana"), self.server.ticket_for.servers)
            self._send(200, data, MEDIA_TYPE)
        else:
            self._send(404, b'{"detail": "no"}', "application/json")


@pytest.fixture
def proxy(issuer: Issuer) -> Iterator[FakeProxy]:
    server = FakeProxy(issuer)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(5)


def _ticket(issuer: Issuer, proxy: FakeProxy, cookies: dict[str, str]) -> TicketContents:
    issuer.center_url = f"http://127.0.0.1:{proxy.server_address[1]}/center/"
    entry = ServerEntry(name="main", host="127.0.0.1", port=9443, zone=Zone.INTERNAL)
    return issuer.ticket(issuer.credential("ana"), [entry], cookies=cookies)


async def test_event_and_dialin_info_carry_the_proxy_cookie(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    ticket = _ticket(issuer, proxy, {SESSION: proxy.good, "theme": '"dark"'})
    async with CenterClient(ticket) as center:
        event = await center.event_info()
        dialin = await center.dialin_info()
    assert event["title"] == "All hands" and event["live"]["state"] == "ready"
    assert dialin["access_code"] == "12345678"
    assert proxy.cookie_headers == [f'{SESSION}={proxy.good}; theme="dark"'] * 2


async def test_a_cookie_the_proxy_renews_is_used_for_the_next_call(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    ticket = _ticket(issuer, proxy, {SESSION: proxy.good})
    proxy.renewed = "s3cret-2"
    async with CenterClient(ticket) as center:
        await center.event_info()
        proxy.good = "expired"
        await center.dialin_info()
    assert proxy.cookie_headers[-1] == f"{SESSION}=s3cret-2"


async def test_without_the_cookie_the_proxy_redirect_means_signed_out(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    ticket = _ticket(issuer, proxy, {SESSION: "stale"})
    async with CenterClient(ticket) as center:
        with pytest.raises(SignedOutAtProxy) as error:
            await center.event_info()
    assert "signed out at the proxy" in str(error.value)
    assert "proxy.test/login" in str(error.value) and error.value.status == 302
    assert len(proxy.cookie_headers) == 1  # the redirect was not followed


async def test_a_proxy_login_page_instead_of_json_means_signed_out(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    proxy.login_page = True
    ticket = _ticket(issuer, proxy, {})
    async with CenterClient(ticket) as center:
        with pytest.raises(SignedOutAtProxy, match="signed out at the proxy"):
            await center.dialin_info()
    assert proxy.cookie_headers == [None]


async def test_the_center_s_own_refusal_and_an_unreachable_center_are_clear_errors(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    ticket = _ticket(issuer, proxy, {SESSION: proxy.good})
    async with CenterClient(replace(ticket, event_id=7)) as center:
        with pytest.raises(CenterError) as refused:
            await center.event_info()
    assert refused.value.status == 404 and "no such event" in str(refused.value)
    assert not isinstance(refused.value, SignedOutAtProxy)

    port = proxy.server_address[1]
    proxy.shutdown()
    proxy.server_close()
    gone = replace(ticket, center_url=f"http://127.0.0.1:{port}/center/")
    async with CenterClient(gone, timeout=2) as center:
        with pytest.raises(CenterError, match="cannot reach the Center"):
            await center.event_info()


async def test_a_fresh_ticket_comes_from_the_center_signed_by_the_same_key(
    issuer: Issuer, proxy: FakeProxy
) -> None:
    ticket = _ticket(issuer, proxy, {SESSION: proxy.good})
    proxy.ticket_for = ticket
    async with CenterClient(ticket) as center:
        fresh = await center.new_ticket(now=int(time.time()))
    assert fresh.event_id == 42 and fresh.center_key == ticket.center_key
    assert fresh.sealed_credential != ticket.sealed_credential
