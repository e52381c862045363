"""The Center serves the room page and its modules, and gives the page a ticket as JSON."""

from __future__ import annotations

from tests.browser.room_support import schedule_now
from tests.support import Center
from townhall.browser import CONTENT_SECURITY_POLICY


def test_the_room_page_and_its_modules_come_with_their_types_and_a_strict_policy(
    center: Center,
) -> None:
    with center.client() as client:
        page = client.get("/events/7/room")
        module = client.get("/browser/static/wire.js")
        vendored = client.get("/browser/static/vendor/msgpack/utils/utf8.mjs")
        style = client.get("/browser/static/room.css")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="/browser/static/room.js">' in page.text
    for response in (page, module, vendored, style):
        # One policy, the room's own: a second one from the Center would block wss:.
        assert response.headers.get_list("content-security-policy") == [CONTENT_SECURITY_POLICY]
        assert response.headers["x-content-type-options"] == "nosniff"
    assert module.headers["content-type"] == "text/javascript; charset=utf-8"
    assert vendored.headers["content-type"] == "text/javascript; charset=utf-8"
    assert style.headers["content-type"] == "text/css; charset=utf-8"
    assert "connect-src 'self' wss:" in CONTENT_SECURITY_POLICY
    assert "'unsafe-inline'" not in CONTENT_SECURITY_POLICY


def test_only_files_of_the_static_folder_are_served(center: Center) -> None:
    with center.client() as client:
        for path in (
            "/browser/static/../__init__.py",
            "/browser/static/%2e%2e/routes.py",
            "/browser/static/vendor/msgpack/LICENSE",  # no type on the list: not served
            "/browser/static/nothing.js",
            "/browser/static/.hidden.js",
            "/events/0/room",
        ):
            assert client.get(path).status_code == 404, path


def test_an_event_without_a_server_tree_gets_no_browser_ticket_but_a_reason(
    center: Center,
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as olga:
        # No tree yet: the Center says so plainly.
        response = olga.post(f"/api/v1/events/{event_id}/browser-ticket", json={})
    assert response.status_code in (409, 422), response.text
    assert response.json()["error"]["message"]


def test_a_cookie_session_must_ask_for_a_ticket_in_json_and_a_stranger_gets_none(
    center: Center,
) -> None:
    event_id = schedule_now(center)
    with center.client() as stranger:
        refused = stranger.post(f"/api/v1/events/{event_id}/browser-ticket", json={})
    assert refused.status_code == 401
    with center.client() as browser:
        assert browser.get("/login").status_code == 200
        login = {"username": "mike", "password": "correct horse", "next": "/events"}
        signed_in = browser.post("/login", data={**login, "csrf": browser.cookies["townhall_csrf"]})
        assert signed_in.status_code == 303, signed_in.text
        # A cross-site form can post, but not as JSON.
        form = browser.post(f"/api/v1/events/{event_id}/browser-ticket", data={"x": "1"})
        # The page's own request, JSON from the same session, gets past the check (the
        # event has no server tree yet, which is the next thing the Center says).
        page = browser.post(f"/api/v1/events/{event_id}/browser-ticket", json={})
    assert form.status_code == 415
    assert page.status_code in (409, 422), page.text
