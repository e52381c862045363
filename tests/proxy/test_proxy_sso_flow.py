"""Signing in once at a real proxy (Apache or nginx, checking passwords in slapd), then the portal.

Each test runs against both shipped configurations. A browser-like client
meets the proxy's sign-in page, fills it in, and from then on uses the
catalog, event pages and the API with the proxy's cookie alone; signing out
at the proxy ends it. The Center is also reached directly, from 127.0.0.1,
where the identity header is just a header.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.proxy.proxy_support import COOKIE, PASSWORDS, Rig
from townhall.desktop.session import find_login_form, login_form_of
from townhall.ticket import MEDIA_TYPE


@pytest.fixture(params=["nginx", "apache"])
def proxy(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


def make_event(rig: Rig, title: str, visibility: str = "private") -> int:
    with rig.center.client("olga") as api:
        response = api.post(
            "/api/v1/events",
            json={
                "title": title,
                "starts_at": "2031-05-04T09:00:00Z",
                "duration_minutes": 45,
                "visibility": visibility,
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_one_sign_in_opens_the_catalog_event_pages_and_the_api(rig: Rig, proxy: str) -> None:
    event_id = make_event(rig, f"Quarterly review via {proxy[-5:]}")
    with rig.client(proxy) as browser:
        landed = rig.sign_in(browser, "olga", path=f"/events/{event_id}")
        # Back on the page asked for, signed in; the proxy's cookie is all it took.
        assert landed.status_code == 200
        assert landed.url.path == f"/events/{event_id}"
        assert "Quarterly review" in landed.text
        assert COOKIE in browser.cookies
        for path in ("/events", f"/events/{event_id}", f"/events/{event_id}/dialin"):
            page = browser.get(path)
            assert page.status_code == 200, (path, page.text[:300])
            assert login_form_of(page) is None, f"{path}: asked to sign in again"
        assert "Quarterly review" in browser.get("/events").text
        me = browser.get("/api/v1/me").json()
        assert (me["username"], me["signed_in_via"]) == ("olga", "sso")
        assert me["email"] == "olga@example.org"
        assert me["display_name"] == "Olga Organizer"
        listed = browser.get("/api/v1/events", params={"when": "all"}).json()
        assert event_id in [item["id"] for item in listed["items"]]
        # The event page's Join button: the ticket downloads, still no second sign-in.
        token = re.search(r'name="csrf" value="([^"]+)"', browser.get(f"/events/{event_id}").text)
        assert token is not None
        joined = browser.post(f"/events/{event_id}/ticket", data={"csrf": token.group(1)})
        assert joined.status_code == 200, joined.text[:300]
        assert joined.headers["content-type"].split(";")[0] == MEDIA_TYPE
        assert joined.content.startswith(b"THT1")


def test_a_directory_user_without_an_account_gets_one(rig: Rig, nginx: str) -> None:
    # nora is only in the directory; her group makes her an organizer
    # (the sign-in service passes groups, X-Remote-Groups).
    with rig.client(nginx) as browser:
        rig.sign_in(browser, "nora")
        me = browser.get("/api/v1/me").json()
    assert (me["username"], me["role"], me["signed_in_via"]) == ("nora", "organizer", "sso")


def test_a_wrong_password_gets_the_form_again(rig: Rig, proxy: str) -> None:
    with rig.client(proxy) as browser:
        page = browser.get("/events")
        form = find_login_form(page.text, str(page.url))
        assert form is not None
        again = browser.post(form.action, data=dict(form.filled("olga", "not-her-password")))
        assert again.status_code == 401
        assert "Wrong user name or password" in again.text
        assert find_login_form(again.text, str(again.url)) is not None
        after = browser.get("/api/v1/me")
        assert login_form_of(after) is not None  # still the proxy's page, never the API


def test_signing_out_at_the_proxy_ends_single_sign_on(rig: Rig, proxy: str) -> None:
    with rig.client(proxy) as browser:
        rig.sign_in(browser, "mike")
        assert browser.get("/api/v1/me").json()["username"] == "mike"
        copied = browser.cookies[COOKIE]
        out = rig.sign_out(browser)
        assert out.status_code == 200
        assert "Signed out" in out.text
        after = browser.get("/api/v1/me")
        assert after.status_code == 401
        assert login_form_of(after) is not None
        assert "mike" not in after.text
    if proxy == rig.nginx_url:
        # The sign-in service keeps sessions itself: a copy of the cookie (as a join
        # ticket carries) is dead too. Apache's cookie holds the session itself,
        # so a copy lives until SessionMaxAge (docs/reverse-proxy.md).
        with rig.client(proxy, cookies={COOKIE: copied}) as other:
            assert login_form_of(other.get("/api/v1/me")) is not None


def test_the_header_sent_straight_to_the_center_is_ignored(rig: Rig) -> None:
    # Any local process reaches the Center from 127.0.0.1: not a trusted proxy.
    with httpx.Client(base_url=rig.center_direct, timeout=20) as direct:
        me = direct.get(
            "/api/v1/me", headers={"X-Remote-User": "ada", "X-Remote-Email": "ada@example.org"}
        )
        assert me.status_code == 401
        page = direct.get("/events", headers={"X-Remote-User": "ada"}, follow_redirects=False)
        assert page.status_code in (302, 303)
        assert "/login" in page.headers["location"]


def test_an_api_token_passes_the_proxy_without_a_sign_in(rig: Rig, proxy: str) -> None:
    token = rig.center.token_for("mike")
    with rig.client(proxy) as program:
        me = program.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200, me.text[:300]
        assert (me.json()["username"], me.json()["signed_in_via"]) == ("mike", "token")
        # Only the API: a page with a token still needs the proxy's sign-in.
        page = program.get("/events", headers={"Authorization": f"Bearer {token}"})
        assert login_form_of(page) is not None
        # A made-up token is the Center's to refuse.
        bad = program.get("/api/v1/me", headers={"Authorization": "Bearer th_made_up"})
        assert bad.status_code == 401
        assert bad.json()["error"]["code"] == "bad_token"


def _sent_back_to(rig: Rig, browser: httpx.Client, page: httpx.Response) -> str:
    form = find_login_form(page.text, str(page.url))
    assert form is not None, page.text[:300]
    sent = browser.post(form.action, data=dict(form.filled("olga", PASSWORDS["olga"])))
    assert sent.status_code in (302, 303)
    return str(sent.headers["location"])


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example/x"])
def test_the_sign_in_page_never_sends_users_elsewhere(rig: Rig, proxy: str, target: str) -> None:
    # A link to https://proxy//evil.example/x must not end on evil.example after sign-in.
    with rig.client(proxy, follow_redirects=False) as browser:
        page = browser.get(httpx.URL(proxy).copy_with(raw_path=target.encode()))
        assert page.status_code == 401
        assert _sent_back_to(rig, browser, page) == "/"


@pytest.mark.parametrize("rd", ["//evil.example/", "https://evil.example/", "/sso/logout"])
def test_the_sign_in_service_takes_only_paths_of_its_own_site(
    rig: Rig, nginx: str, rd: str
) -> None:
    with rig.client(nginx, follow_redirects=False) as browser:
        page = browser.get("/sso/login", params={"rd": rd})
        assert page.status_code == 200
        assert _sent_back_to(rig, browser, page) == "/"
