"""The proxy's session cookie rides in the join ticket and keeps the participant signed in.

A user signed in at the real proxy asks for a join ticket (the Join button's
call, or ``townhall join https://…/events/N``); the Center, seeing the request
come from its trusted proxy, copies the proxy's cookie into the ticket. The
participant application's own HTTP calls (event info, dial-in info) then get
through the proxy with it, and without it they meet the proxy's sign-in.
"""

from __future__ import annotations

import dataclasses
import ssl
import time
from pathlib import Path

import pytest

from tests.proxy.proxy_support import COOKIE, PASSWORDS, Rig
from townhall.center.live import center_public_key
from townhall.client.center import CenterClient, SignedOutAtProxy
from townhall.desktop.join import resolve_join_target
from townhall.desktop.store import Store
from townhall.ticket import MEDIA_TYPE, TicketContents, open_ticket


@pytest.fixture(params=["nginx", "apache"])
def proxy(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def make_event(rig: Rig, title: str) -> int:
    with rig.center.client("olga") as api:
        response = api.post(
            "/api/v1/events",
            json={
                "title": title,
                "starts_at": "2031-09-01T09:00:00Z",
                "duration_minutes": 60,
                "visibility": "public",
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def opened(rig: Rig, data: bytes) -> TicketContents:
    return open_ticket(
        data, center_public_key=center_public_key(rig.center.settings), now=int(time.time())
    )


def as_seen_at(contents: TicketContents, rig: Rig, proxy: str) -> TicketContents:
    # The Center has one public URL (center.base_url, here nginx); the rig also puts
    # Apache in front of the same Center, so for Apache the calls go there instead.
    if proxy == rig.nginx_url:
        assert contents.center_url.rstrip("/") == rig.nginx_url
        return contents
    return dataclasses.replace(contents, center_url=proxy)


async def test_the_captured_cookie_carries_the_participants_calls(rig: Rig, proxy: str) -> None:
    event_id = make_event(rig, "Town meeting with tickets")
    with rig.client(proxy) as browser:
        rig.sign_in(browser, "mike")
        # The cookie this request carries (Apache renews it on every answer).
        proxy_cookie = browser.cookies[COOKIE]
        response = browser.post(f"/api/v1/events/{event_id}/ticket", json={})
        assert response.status_code == 200, response.text[:300]
        assert response.headers["content-type"].split(";")[0] == MEDIA_TYPE
    contents = as_seen_at(opened(rig, response.content), rig, proxy)
    assert dict(contents.cookies) == {COOKIE: proxy_cookie}
    assert contents.username == "mike"

    verify = ssl.create_default_context(cafile=rig.ca_file)
    async with CenterClient(contents, verify=verify) as center:
        info = await center.event_info()
        assert (info["id"], info["title"]) == (event_id, "Town meeting with tickets")
        dialin = await center.dialin_info()
        assert len(dialin["access_code"]) == 8

    # Without the cookie, the same calls are sent to the proxy's sign-in.
    bare = dataclasses.replace(contents, cookies={})
    async with CenterClient(bare, verify=verify) as center:
        with pytest.raises(SignedOutAtProxy):
            await center.event_info()
        with pytest.raises(SignedOutAtProxy):
            await center.dialin_info()


async def test_the_participant_gets_a_fresh_ticket_through_the_proxy(
    rig: Rig, proxy: str
) -> None:
    # The participant application's "new ticket" call, with the captured cookie
    # alone, through the real proxy (it was refused 415 json_required).
    event_id = make_event(rig, "Fresh tickets through the proxy")
    with rig.client(proxy) as browser:
        rig.sign_in(browser, "mike")
        data = browser.post(f"/api/v1/events/{event_id}/ticket", json={}).content
    contents = as_seen_at(opened(rig, data), rig, proxy)
    verify = ssl.create_default_context(cafile=rig.ca_file)
    async with CenterClient(contents, verify=verify) as center:
        fresh = await center.new_ticket(now=int(time.time()))
    assert (fresh.event_id, fresh.username) == (event_id, "mike")
    assert fresh.sealed_credential != contents.sealed_credential


async def test_signing_out_at_the_proxy_ends_the_tickets_session(rig: Rig, nginx: str) -> None:
    event_id = make_event(rig, "Short-lived session")
    with rig.client(nginx) as browser:
        rig.sign_in(browser, "olga")
        data = browser.post(f"/api/v1/events/{event_id}/ticket", json={}).content
        contents = opened(rig, data)
        verify = ssl.create_default_context(cafile=rig.ca_file)
        async with CenterClient(contents, verify=verify) as center:
            assert (await center.event_info())["id"] == event_id
        rig.sign_out(browser)
    async with CenterClient(contents, verify=verify) as center:
        with pytest.raises(SignedOutAtProxy):
            await center.event_info()


def test_join_links_fetch_the_ticket_through_the_proxy(
    rig: Rig, proxy: str, tmp_path: Path
) -> None:
    event_id = make_event(rig, "Joined from a link")
    store = Store(tmp_path / "config")
    asked: list[str] = []

    def password(url: str, username: str) -> str:
        asked.append(username)
        return PASSWORDS[username]

    host = proxy.removeprefix("https://")
    for link in (f"{proxy}/events/{event_id}", f"townhall://{host}/events/{event_id}"):
        data = resolve_join_target(
            link, store=store, password=password, username="olga", ca_file=rig.ca_file
        )
        contents = opened(rig, data)
        assert (contents.event_id, contents.username, contents.role) == (
            event_id,
            "olga",
            "moderator",
        )
        assert COOKIE in contents.cookies
    assert asked == ["olga"]  # signed in once; the second link used the kept cookie
