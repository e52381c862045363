"""The HTML portal as a browser without JavaScript drives it, against a real Center.

Each test signs in through the sign-in form, reads the CSRF cookie the pages
set and posts forms the way a browser would; redirects are followed by hand
so that every status and Location is checked.
"""

from __future__ import annotations

import email
import email.policy
import re
import socket
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import icalendar
import pytest
from sqlalchemy import update

from tests.support import Center, make_settings, start_center
from townhall.center.tables import User, WebSession
from townhall.config import Settings

PASSWORD = "correct horse"
SignIn = Callable[[str], httpx.Client]


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    # Deliver to the outbox folder at once, so a test can read the invitations.
    return make_settings(tmp_path / "data", database_url, mail={"poll_seconds": 0.1})


def browser(center: Center) -> httpx.Client:
    return httpx.Client(base_url=center.url, follow_redirects=False, timeout=20)


def sign_in(
    client: httpx.Client, username: str, password: str = PASSWORD, next: str = "/events"
) -> httpx.Response:
    assert client.get("/login").status_code == 200
    return client.post(
        "/login",
        data={
            "username": username,
            "password": password,
            "next": next,
            "csrf": client.cookies["townhall_csrf"],
        },
    )


@pytest.fixture
def signed_in(center: Center) -> Iterator[SignIn]:
    clients: list[httpx.Client] = []

    def open_as(username: str) -> httpx.Client:
        client = browser(center)
        clients.append(client)
        response = sign_in(client, username)
        assert response.status_code == 303, response.text
        return client

    yield open_as
    for client in clients:
        client.close()


def post_form(
    client: httpx.Client, path: str, data: dict[str, str] | None = None
) -> httpx.Response:
    """Post as the page's own form does: with the CSRF token from the cookie."""
    return client.post(path, data={**(data or {}), "csrf": client.cookies["townhall_csrf"]})


def schedule(client: httpx.Client, **fields: str) -> int:
    form = {
        "title": "Town meeting",
        "description": "Plans for the spring",
        "agenda": "1. Welcome\n2. Questions",
        "start": "2031-05-05T08:00",
        "timezone": "America/New_York",
        "duration_minutes": "90",
        "kind": "meeting",
        "visibility": "public",
        "audio_mode": "both",
        "moderators": "",
        "presenters": "",
        "invitees": "",
    }
    form.update(fields)
    assert client.get("/events/new").status_code == 200
    response = post_form(client, "/events/new", form)
    assert response.status_code == 303, response.text
    match = re.fullmatch(r"/events/(\d+)\?done=created", response.headers["location"])
    assert match, response.headers["location"]
    return int(match.group(1))


def outbox_link(center: Center, recipient: str, timeout: float = 20) -> str:
    """The personal join link path from the invitation written to the outbox folder."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in sorted(center.settings.outbox_dir.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if str(message["To"]) == recipient:
                text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                match = re.search(r"/j/\d+\.[0-9a-f]{32}", text)
                assert match, text
                return match.group(0)
        time.sleep(0.05)
    raise AssertionError(f"no invitation to {recipient} in the outbox")


# --- signing in ---------------------------------------------------------------------------


def test_signing_in_with_a_password_sets_a_session_cookie_and_goes_to_next(center: Center) -> None:
    with browser(center) as client:
        response = sign_in(client, "olga", next="/account")
        assert response.status_code == 303
        assert response.headers["location"] == "/account"
        cookie = next(
            value
            for name, value in response.headers.multi_items()
            if name == "set-cookie" and value.startswith("townhall_session=")
        )
        assert "HttpOnly" in cookie
        assert "samesite=lax" in cookie.lower()
        assert "Max-Age=43200" in cookie
        page = client.get("/account")
        assert page.status_code == 200
        assert "olga" in page.text
        assert "password" in page.text


def test_a_wrong_password_shows_the_form_again_without_a_session(center: Center) -> None:
    with browser(center) as client:
        response = sign_in(client, "olga", password="wrong horse")
        assert response.status_code == 401
        assert "Wrong username or password" in response.text
        assert "townhall_session" not in client.cookies
        unknown = sign_in(client, "nobody", password="wrong horse")
        assert unknown.status_code == 401
        assert "Wrong username or password" in unknown.text


@pytest.mark.parametrize(
    "target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "events"]
)
def test_sign_in_only_goes_on_to_paths_of_this_site(center: Center, target: str) -> None:
    with browser(center) as client:
        response = sign_in(client, "mike", next=target)
        assert response.status_code == 303
        assert response.headers["location"] == "/events"


def test_anonymous_visitors_are_sent_to_sign_in_and_back(center: Center) -> None:
    with browser(center) as client:
        assert client.get("/").headers["location"] == "/login?next=/events"
        response = client.get("/events?q=budget")
        assert response.status_code == 303
        assert response.headers["location"] == "/login?next=/events%3Fq%3Dbudget"
        assert client.get("/account").headers["location"] == "/login?next=/account"
        assert client.get("/events/7").headers["location"] == "/login?next=/events/7"


def test_signing_out_ends_the_session(signed_in: SignIn) -> None:
    mike = signed_in("mike")
    assert mike.get("/events").status_code == 200
    response = post_form(mike, "/logout")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert mike.get("/events").status_code == 303


def _set_in_database(center: Center, statement: object) -> None:
    with center.sessions() as session:  # type: ignore[operator]
        session.execute(statement)
        session.commit()


def test_an_expired_session_or_a_disabled_account_is_signed_out(
    center: Center, signed_in: SignIn
) -> None:
    mike = signed_in("mike")
    olga = signed_in("olga")
    assert mike.get("/events").status_code == 200
    long_ago = datetime(2020, 1, 1)
    _set_in_database(center, update(WebSession).values(expires_at=long_ago))
    assert mike.get("/events").headers["location"] == "/login?next=/events"
    assert olga.get("/events").status_code == 303
    ada = signed_in("ada")
    assert ada.get("/events").status_code == 200
    _set_in_database(center, update(User).where(User.username == "ada").values(active=False))
    assert ada.get("/events").headers["location"] == "/login?next=/events"


# --- catalog and scheduling ------------------------------------------------------------------


def test_the_catalog_lists_a_public_event_and_search_filters_it(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, title="Spring town meeting")
    mike = signed_in("mike")
    page = mike.get("/events")
    assert page.status_code == 200
    assert f'href="/events/{event_id}"' in page.text
    assert "Spring town meeting" in page.text
    assert '<time class="local" datetime="2031-05-05T12:00:00Z">' in page.text
    assert "Schedule an event" not in page.text
    assert "Spring town meeting" in mike.get("/events", params={"q": "spring"}).text
    assert "Spring town meeting" not in mike.get("/events", params={"q": "autumn"}).text
    later = mike.get("/events", params={"from": "2031-06-01", "to": "2031-06-30"})
    assert "Spring town meeting" not in later.text
    that_day = mike.get("/events", params={"from": "2031-05-05", "to": "2031-05-05"})
    assert "Spring town meeting" in that_day.text
    assert "Schedule an event" in olga.get("/events").text


def test_the_catalog_page_refuses_a_bad_query_with_a_page_naming_it(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    schedule(olga, title="Spring town meeting")
    for query, named in (
        ("page=0", "query.page"),
        ("page=two", "query.page"),
        ("when=soon", "query.when"),
        ("from=" + "9" * 11, "query.from"),
        ("q=" + "q" * 201, "query.q"),
    ):
        refused = olga.get("/events?" + query)
        assert refused.status_code == 422, query
        assert refused.headers["content-type"].startswith("text/html"), query
        assert named in refused.text, query
    # Repeated: the last value counts; unknown parameters are ignored.
    shown = olga.get("/events?q=autumn&q=spring&colour=blue")
    assert shown.status_code == 200 and "Spring town meeting" in shown.text


def test_a_member_may_not_schedule_events(signed_in: SignIn) -> None:
    mike = signed_in("mike")
    assert mike.get("/events/new").status_code == 403
    assert post_form(mike, "/events/new", {"title": "Mine"}).status_code == 403


def test_a_private_event_is_invisible_to_others_and_its_page_is_not_found(
    signed_in: SignIn,
) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, title="Board only", visibility="private")
    assert "Board only" in olga.get("/events").text
    mike = signed_in("mike")
    assert "Board only" not in mike.get("/events").text
    page = mike.get(f"/events/{event_id}")
    assert page.status_code == 404
    assert "Board only" not in page.text
    assert mike.get(f"/events/{event_id}/calendar.ics").status_code == 404
    assert mike.get(f"/events/{event_id}/dialin").status_code == 404


def test_invalid_event_input_comes_back_with_the_messages_and_the_input(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    olga.get("/events/new")
    response = post_form(
        olga,
        "/events/new",
        {
            "title": "Kept title",
            "start": "2031-05-05T08:00",
            "timezone": "Europe/Berlin",
            "duration_minutes": "0",
            "kind": "meeting",
            "visibility": "public",
            "audio_mode": "voip",
            "invitees": "fine@example.com\nnot-an-address",
        },
    )
    assert response.status_code == 422
    assert "duration" in response.text
    assert "not an email address" in response.text
    assert 'value="Kept title"' in response.text
    assert "not-an-address" in response.text
    unknown = post_form(
        olga,
        "/events/new",
        {
            "title": "x",
            "start": "2031-05-05T08:00",
            "timezone": "Europe/Berlin",
            "duration_minutes": "30",
            "moderators": "nobody-here",
        },
    )
    assert unknown.status_code == 422
    assert "no user" in unknown.text
    gap = post_form(
        olga,
        "/events/new",
        {
            "title": "x",
            "start": "2031-03-30T02:30",
            "timezone": "Europe/Berlin",
            "duration_minutes": "30",
        },
    )
    assert gap.status_code == 422
    assert "does not exist" in gap.text


def test_a_form_without_its_csrf_token_is_refused(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    form = {
        "title": "Forged",
        "start": "2031-05-05T08:00",
        "timezone": "UTC",
        "duration_minutes": "30",
    }
    assert olga.post("/events/new", data=form).status_code == 403
    assert olga.post("/events/new", data={**form, "csrf": "x" * 32}).status_code == 403
    assert "Forged" not in olga.get("/events").text
    assert olga.post("/account/tokens", data={"name": "forged"}).status_code == 403


def test_a_script_in_a_title_is_shown_as_text(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, title="<script>alert(1)</script>", description="<b>bold</b>")
    for page in (olga.get("/events"), olga.get(f"/events/{event_id}")):
        assert page.status_code == 200
        assert "<script>alert(1)" not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "&lt;b&gt;bold&lt;/b&gt;" in olga.get(f"/events/{event_id}").text


# --- the event page ------------------------------------------------------------------------


def test_the_event_page_shows_the_start_in_the_viewers_time_zone(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga)
    mike = signed_in("mike")
    page = mike.get(f"/events/{event_id}").text
    assert "Mon 5 May 2031, 12:00 UTC" in page
    assert "Mon 5 May 2031, 08:00 EDT" in page
    assert "America/New_York" in page
    mike.get("/account")
    saved = post_form(mike, "/account/timezone", {"timezone": "Europe/Berlin"})
    assert saved.status_code == 303
    page = mike.get(f"/events/{event_id}").text
    assert "Mon 5 May 2031, 14:00 CEST" in page
    assert 'data-zone-chosen="yes"' in page
    assert "14:00 CEST" in mike.get("/events").text
    refused = post_form(mike, "/account/timezone", {"timezone": "Mars/Olympus"})
    assert refused.status_code == 422
    assert "unknown time zone" in refused.text


def test_the_event_page_shows_details_and_links(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, recording="on", presenters="mike", moderators="ada")
    mike = signed_in("mike")
    page = mike.get(f"/events/{event_id}").text
    assert "Plans for the spring" in page
    assert "2. Questions" in page
    assert "1 h 30 min" in page
    assert "yes, the event is recorded" in page
    assert f'href="/events/{event_id}/calendar.ics"' in page
    assert f'href="/events/{event_id}/dialin"' in page
    assert "Registrations" not in page  # not a manager
    assert "Edit" not in page


def test_a_member_registers_for_a_public_event_and_cancels_it(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga)
    mike = signed_in("mike")
    assert "You are not registered" in mike.get(f"/events/{event_id}").text
    response = post_form(mike, f"/events/{event_id}/register")
    assert response.status_code == 303
    page = mike.get(response.headers["location"]).text
    assert "You are registered" in page
    registration = re.search(rf"/events/{event_id}/registrations/(\d+)/revoke", page)
    assert registration
    cancelled = post_form(mike, registration.group(0))
    assert cancelled.status_code == 303
    assert "Your registration was cancelled" in mike.get(f"/events/{event_id}").text


def test_a_manager_sees_the_registrations_and_revokes_one(
    center: Center, signed_in: SignIn
) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, visibility="private", invitees="guest@example.com, mike@example.org")
    page = olga.get(f"/events/{event_id}").text
    assert "guest@example.com" in page
    assert "mike@example.org" in page
    assert "Mail delivery" in page
    with center.client("olga") as api:
        listed = api.get(f"/api/v1/events/{event_id}/registrations").json()
    guest = next(r for r in listed if r["email"] == "guest@example.com")
    response = post_form(olga, f"/events/{event_id}/registrations/{guest['id']}/revoke")
    assert response.status_code == 303
    with center.client("olga") as api:
        listed = api.get(f"/api/v1/events/{event_id}/registrations").json()
    assert {r["email"]: r["status"] for r in listed} == {
        "guest@example.com": "revoked",
        "mike@example.org": "registered",
    }
    added = post_form(
        olga,
        f"/events/{event_id}/registrations",
        {"email": "late@example.com", "display_name": "Lee"},
    )
    assert added.status_code == 303
    assert "late@example.com" in olga.get(f"/events/{event_id}").text
    bad = post_form(olga, f"/events/{event_id}/registrations", {"email": "nope"})
    assert bad.status_code == 422
    mike = signed_in("mike")
    assert mike.get(f"/events/{event_id}").status_code == 200  # invited, so visible
    assert (
        post_form(mike, f"/events/{event_id}/registrations/{guest['id']}/revoke").status_code == 403
    )


def move_to_nine_as_a_lecture(client: httpx.Client, event_id: int, title: str) -> httpx.Response:
    """The edit form as a manager sends it: renamed, 09:00 New York, an hour, a lecture."""
    return post_form(
        client,
        f"/events/{event_id}/edit",
        {
            "title": title,
            "start": "2031-05-05T09:00",
            "timezone": "America/New_York",
            "duration_minutes": "60",
            "kind": "lecture",
            "visibility": "public",
            "audio_mode": "voip",
        },
    )


def test_a_manager_edits_and_cancels_an_event(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga)
    form = olga.get(f"/events/{event_id}/edit")
    assert form.status_code == 200
    assert 'value="2031-05-05T08:00"' in form.text
    assert '<option value="America/New_York" selected>' in form.text
    saved = move_to_nine_as_a_lecture(olga, event_id, "Renamed meeting")
    assert saved.status_code == 303, saved.text
    page = olga.get(f"/events/{event_id}").text
    assert "Renamed meeting" in page
    assert "09:00 EDT" in page
    assert "lecture" in page
    mike = signed_in("mike")
    assert mike.get(f"/events/{event_id}/edit").status_code == 403
    assert post_form(mike, f"/events/{event_id}/cancel").status_code == 403
    assert post_form(olga, f"/events/{event_id}/cancel").status_code == 303
    assert "This event is cancelled" in mike.get(f"/events/{event_id}").text
    assert "Renamed meeting" not in mike.get("/events").text
    assert "Renamed meeting" in mike.get("/events", params={"cancelled": "1"}).text


def test_the_catalog_shows_an_edited_or_cancelled_event_as_it_now_is(
    signed_in: SignIn, center: Center
) -> None:
    """The catalog keeps each rendered row: a row seen before a change must not outlive it,
    and a reader in another zone must not be shown the first reader's times."""
    olga = signed_in("olga")
    event_id = schedule(olga, title="Budget meeting", start="2031-05-05T08:00")
    center.add_user("ana")
    ana = signed_in("ana")
    assert post_form(ana, "/account/timezone", {"timezone": "Asia/Tokyo"}).status_code == 303
    mike = signed_in("mike")
    assert "Mon 5 May 2031, 12:00 UTC" in mike.get("/events").text
    assert "Mon 5 May 2031, 21:00 JST" in ana.get("/events").text
    saved = move_to_nine_as_a_lecture(olga, event_id, "Budget meeting, moved")
    assert saved.status_code == 303, saved.text
    row = _catalog_row(mike.get("/events").text, event_id)
    assert "Budget meeting, moved" in row and "13:00 UTC" in row and "lecture" in row
    assert post_form(olga, f"/events/{event_id}/cancel").status_code == 303
    row = _catalog_row(mike.get("/events", params={"cancelled": "1"}).text, event_id)
    assert 'class="is-cancelled"' in row and "status-cancelled" in row


def _catalog_row(page: str, event_id: int) -> str:
    rows = [row for row in page.split("<tr")[1:] if f'href="/events/{event_id}"' in row]
    assert len(rows) == 1, page
    return rows[0]


def test_the_calendar_download_is_a_vcalendar(signed_in: SignIn) -> None:
    olga = signed_in("olga")
    event_id = schedule(olga, title="Calendar test")
    response = signed_in("mike").get(f"/events/{event_id}/calendar.ics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    assert response.headers["content-disposition"].startswith("attachment;")
    calendar = icalendar.Calendar.from_ical(response.content)
    assert calendar.name == "VCALENDAR"
    assert str(calendar["METHOD"]) == "PUBLISH"
    item = next(c for c in calendar.walk() if c.name == "VEVENT")
    assert str(item["SUMMARY"]) == "Calendar test"
    assert item.decoded("DTSTART").isoformat() == "2031-05-05T12:00:00+00:00"
    assert str(item["URL"]).endswith(f"/events/{event_id}")


def test_the_dial_in_page_gives_numbers_and_code_unless_audio_is_internet_only(
    signed_in: SignIn,
) -> None:
    olga = signed_in("olga")
    phone = schedule(olga, audio_mode="both")
    internet = schedule(olga, audio_mode="voip")
    page = olga.get(f"/events/{phone}/dialin").text
    assert "+1 555 0100" in page
    assert re.search(r'class="code">\d{8}<', page)
    page = olga.get(f"/events/{internet}/dialin").text
    assert "Phone dial-in is off for this event" in page
    assert "+1 555 0100" not in page


def test_a_manager_retries_a_failed_invitation_from_the_event_page(
    tmp_path: Path, database_url: str
) -> None:
    with socket.socket() as sock:  # a port nobody listens on: every delivery fails
        sock.bind(("127.0.0.1", 0))
        dead_port = sock.getsockname()[1]
    settings = make_settings(
        tmp_path / "data",
        database_url,
        mail={
            "smtp_url": f"smtp://127.0.0.1:{dead_port}",
            "poll_seconds": 0.1,
            "max_attempts": 1,
            "timeout_seconds": 5,
        },
    )
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("olga", role="organizer")
        with browser(center) as olga:
            assert sign_in(olga, "olga").status_code == 303
            event_id = schedule(olga, visibility="private", invitees="guest@example.com")

            def failed_retry_forms() -> list[str]:
                page = olga.get(f"/events/{event_id}").text
                return re.findall(rf"/events/{event_id}/mail/\d+/retry", page)

            deadline = time.monotonic() + 20
            while not failed_retry_forms() and time.monotonic() < deadline:
                time.sleep(0.1)
            retry = failed_retry_forms()
            assert len(retry) == 1
            response = post_form(olga, retry[0])
            assert response.status_code == 303
            assert response.headers["location"] == f"/events/{event_id}?done=retried"
            with center.client("olga") as api:
                deadline = time.monotonic() + 20
                attempts = 0
                while attempts < 2 and time.monotonic() < deadline:
                    attempts = api.get(f"/api/v1/events/{event_id}/mail").json()[0]["attempts"]
                    time.sleep(0.1)
            assert attempts == 2


# --- personal join links ---------------------------------------------------------------------


def test_a_personal_join_link_works_for_a_guest_and_fails_when_tampered(
    center: Center, signed_in: SignIn
) -> None:
    olga = signed_in("olga")
    event_id = schedule(
        olga, title="Guest lecture", visibility="private", invitees="guest@example.com"
    )
    link = outbox_link(center, "guest@example.com")
    with browser(center) as guest:
        page = guest.get(link)
        assert page.status_code == 200, page.text
        assert "Guest lecture" in page.text
        assert "This page is for" in page.text
        assert "guest@example.com" in page.text
        assert "Registrations" not in page.text
        assert re.search(r'class="code">\d{8}<', page.text)
        assert guest.get(f"/events/{event_id}").status_code == 303  # the link opens one page only
        tampered = link[:-1] + ("0" if link[-1] != "0" else "1")
        assert guest.get(tampered).status_code == 404
        assert guest.get("/j/1.nothex").status_code == 404
        assert guest.get("/j/999999.0123456789abcdef0123456789abcdef").status_code == 404
        registration_id = link.removeprefix("/j/").split(".")[0]
        post_form(olga, f"/events/{event_id}/registrations/{registration_id}/revoke")
        revoked = guest.get(link)
        assert revoked.status_code == 403
        assert "revoked" in revoked.text


# --- account and administration --------------------------------------------------------------


def test_a_token_made_on_the_account_page_works_until_revoked(
    center: Center, signed_in: SignIn
) -> None:
    mike = signed_in("mike")
    mike.get("/account")
    created = post_form(mike, "/account/tokens", {"name": "laptop <cli>"})
    assert created.status_code == 200
    assert created.headers["cache-control"] == "no-store"
    assert "laptop &lt;cli&gt;" in created.text
    token = re.search(r'<pre class="token">(th_[A-Za-z0-9_-]+)</pre>', created.text)
    assert token
    bearer = {"Authorization": f"Bearer {token.group(1)}"}
    me = httpx.get(center.url + "/api/v1/me", headers=bearer)
    assert me.status_code == 200
    assert me.json()["username"] == "mike"
    page = mike.get("/account").text
    assert token.group(1) not in page  # shown once
    token_id = re.search(r"/account/tokens/(\d+)/revoke", page)
    assert token_id
    assert post_form(mike, token_id.group(0)).status_code == 303
    assert httpx.get(center.url + "/api/v1/me", headers=bearer).status_code == 401
    assert "revoked" in mike.get("/account").text


def test_only_admins_see_the_outbox(center: Center, signed_in: SignIn) -> None:
    olga = signed_in("olga")
    schedule(olga, title="Mailed <event>", visibility="private", invitees="guest@example.com")
    outbox_link(center, "guest@example.com")
    mike = signed_in("mike")
    assert mike.get("/admin/outbox").status_code == 403
    assert mike.get("/admin/users").status_code == 403
    assert "Outbox" not in mike.get("/events").text
    ada = signed_in("ada")
    listing = ada.get("/admin/outbox")
    assert listing.status_code == 200
    assert "guest@example.com" in listing.text
    assert "Mailed &lt;event&gt;" in listing.text
    job = re.search(r'href="(/admin/outbox/\d+)"', listing.text)
    assert job
    message = ada.get(job.group(1))
    assert message.status_code == 200
    assert "To: guest@example.com" in message.text
    assert "Mailed &lt;event&gt;" in message.text
    assert "text/calendar" in message.text
    assert "/j/" in message.text


def test_an_admin_adds_a_local_user_who_can_then_sign_in(center: Center, signed_in: SignIn) -> None:
    ada = signed_in("ada")
    ada.get("/admin/users")
    added = post_form(
        ada,
        "/admin/users",
        {
            "username": "nina",
            "email": "nina@example.org",
            "role": "organizer",
            "password": "long enough",
        },
    )
    assert added.status_code == 303
    assert "nina@example.org" in ada.get("/admin/users").text
    again = post_form(ada, "/admin/users", {"username": "nina", "role": "member"})
    assert again.status_code == 422
    assert "already exists" in again.text
    with browser(center) as nina:
        assert sign_in(nina, "nina", "long enough").status_code == 303
        assert "Schedule an event" in nina.get("/events").text
