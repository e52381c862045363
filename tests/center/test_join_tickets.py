"""Join tickets from the Center: who gets one, what it holds, and revocation reaching due_events.

Every ticket is opened with ``townhall.ticket.open_ticket`` and its sealed
credential checked the way a live server checks it, with the event keys and
credentials list the Controller gets from ``center.live.due_events``.
"""

from __future__ import annotations

import logging
import re
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.manager.manager_support import make_tree, register, signed_in
from tests.support import Center, make_settings, start_center
from townhall import ticket
from townhall.center import accounts
from townhall.center.live import (
    DueEvent,
    center_public_key,
    center_signing_key,
    due_events,
    signing_key_path,
)
from townhall.config import Settings
from townhall.pki import DevCA
from townhall.store.conventions import now_utc
from townhall.webprocess import create_app

API = "/api/v1"
PROXY_COOKIE = "_oauth2_proxy"


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    # The tests' calls come from 127.0.0.1, here the trusted proxy (no header: no SSO).
    return make_settings(
        tmp_path / "data",
        database_url,
        sso={"capture_cookies": [PROXY_COOKIE, "theme", "lang"], "trusted_proxies": ["127.0.0.1"]},
    )


def default_tree(center: Center) -> None:
    """A main server and a DMZ child, made the Manager's default tree."""
    with center.client("ada") as admin:
        register(admin, "main", host="live.example.org", port=9443)
        register(admin, "edge", host="203.0.113.9", port=443, zone="dmz")
        tree = make_tree(admin, "standard", [("main", None), ("edge", "main")])
        assert admin.post(f"/manager/api/v1/trees/{tree['id']}/default").status_code == 200


def add_member(center: Center, username: str) -> None:
    """A member who only uses API tokens: no password to hash, so the test stays quick."""
    with center.sessions() as session:  # type: ignore[operator]
        accounts.create_user(session, username, email=f"{username}@example.org", password=None)
        session.commit()


def schedule(center: Center, organizer: str = "olga", **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "All hands",
        "starts_at": (datetime.now(UTC) + timedelta(days=3)).isoformat(),
        "duration_minutes": 60,
        **fields,
    }
    with center.client(organizer) as client:
        response = client.post(f"{API}/events", json=body)
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def open_ticket(center: Center, response: httpx.Response) -> ticket.TicketContents:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == ticket.MEDIA_TYPE
    return ticket.open_ticket(
        response.content, center_public_key=center_public_key(center.settings), now=int(time.time())
    )


def due(center: Center, event_id: int) -> DueEvent:
    with center.sessions() as session:  # type: ignore[operator]
        found = due_events(session, now=now_utc(), lead=timedelta(days=4), grace=timedelta(0))
    matching = [event for event in found if event.event_id == event_id]
    assert len(matching) == 1
    return matching[0]


def credential_of(center: Center, contents: ticket.TicketContents) -> ticket.Credential:
    """Check the sealed credential as a live server would, with the Controller's lists."""
    listed = due(center, contents.event_id)
    credential = ticket.verify_sealed_credential(
        contents.sealed_credential,
        center_public_key=center_public_key(center.settings),
        event_id=contents.event_id,
        event_keys=listed.event_keys,
        now=int(time.time()),
    )
    assert listed.credentials[credential.credential_id] == credential.secret_sha256
    return credential


def sealed_id(center: Center, contents: ticket.TicketContents) -> str:
    """The credential id inside a ticket, read with the event's keys (revoked or not)."""
    return ticket.verify_sealed_credential(
        contents.sealed_credential,
        center_public_key=center_public_key(center.settings),
        event_id=contents.event_id,
        event_keys=due(center, contents.event_id).event_keys,
        now=int(time.time()),
    ).credential_id


def test_the_organizer_gets_a_moderator_ticket_that_a_live_server_would_accept(
    center: Center,
) -> None:
    default_tree(center)
    event = schedule(center, title="Quarterly town hall")
    with center.client("olga") as olga:
        response = olga.post(f"{API}/events/{event['id']}/ticket")
        again = open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
    contents = open_ticket(center, response)
    assert response.headers["content-disposition"] == (
        f'attachment; filename="event-{event["id"]}.townhall"'
    )
    assert response.headers["cache-control"] == "no-store"
    assert contents.event_id == event["id"]
    assert contents.title == "Quarterly town hall"
    assert contents.center_url == center.settings.center.public_url
    assert (contents.username, contents.role) == ("olga", ticket.Role.MODERATOR)
    assert [(s.name, s.host, s.port, s.zone) for s in contents.servers] == [
        ("main", "live.example.org", 9443, ticket.Zone.INTERNAL),
        ("edge", "203.0.113.9", 443, ticket.Zone.DMZ),
    ]
    assert contents.ca_pem == DevCA.ensure(center.settings.ca_dir).cert_file.read_text()
    assert dict(contents.cookies) == {}
    first = sealed_id(center, contents)
    # A new ticket replaces the person's earlier credential instead of piling up another.
    other = credential_of(center, again)
    assert (other.username, other.role) == ("olga", ticket.Role.MODERATOR)
    assert other.credential_id != first
    listed = due(center, event["id"])
    assert set(listed.credentials) == {other.credential_id}
    assert first not in listed.revoked
    assert len(listed.event_keys) == 1
    # A ticket for a day-away event lives the format's longest: 24 hours.
    assert contents.not_after - contents.issued_at == ticket.MAX_LIFETIME


def test_a_ticket_lists_the_events_own_tree_level_by_level_siblings_by_name(
    center: Center,
) -> None:
    """The servers of a ticket come from one statement (``event_tree_servers``), in the
    order the Manager's own tree view gives them, for the default and a chosen tree."""
    default_tree(center)
    event = schedule(center)
    with center.client("ada") as ada:
        for name in ("hub", "zeta", "alpha", "beta"):
            register(ada, name, host=f"{name}.example.org", port=7443)
        nodes = [("hub", None), ("zeta", "hub"), ("alpha", "hub"), ("beta", "alpha")]
        campus = make_tree(ada, "campus", nodes)
        tree_url = f"/manager/api/v1/events/{event['id']}/tree"
        with center.client("olga") as olga:
            url = f"{API}/events/{event['id']}/ticket"
            by_default = open_ticket(center, olga.post(url))
            assert ada.put(tree_url, json={"tree_id": campus["id"]}).status_code == 200
            chosen = open_ticket(center, olga.post(url))
            manager_order = [node["server"] for node in ada.get(tree_url).json()["nodes"]]
            assert ada.delete(f"/manager/api/v1/trees/{campus['id']}").status_code == 204
            back = open_ticket(center, olga.post(url))
    assert [s.name for s in by_default.servers] == ["main", "edge"]
    assert [s.name for s in chosen.servers] == ["hub", "alpha", "zeta", "beta"] == manager_order
    assert [(s.host, s.port) for s in chosen.servers][-1] == ("beta.example.org", 7443)
    assert [s.name for s in back.servers] == ["main", "edge"]


def test_each_ticket_reflects_the_registration_as_it_stands_at_that_request(
    center: Center,
) -> None:
    """The registration is looked up once per request and passed down, never kept
    across requests: a registration made or revoked a moment ago counts at once."""
    default_tree(center)
    add_member(center, "sam")
    event = schedule(center)
    url = f"{API}/events/{event['id']}/ticket"
    page = f"/events/{event['id']}"
    join_button = f'action="/events/{event["id"]}/ticket"'
    with center.client("olga") as olga, center.client("sam") as sam:
        assert sam.post(url).status_code == 404  # a private event, not invited
        invited = olga.post(
            f"{API}/events/{event['id']}/registrations", json={"email": "sam@example.org"}
        )
        assert invited.status_code == 201, invited.text
        contents = open_ticket(center, sam.post(url))
        assert (contents.username, contents.role) == ("sam", ticket.Role.PARTICIPANT)
        assert sam.get(f"{API}/events/{event['id']}").json()["my_registration"] == "registered"
        assert join_button in sam.get(page).text
        revoked = olga.delete(f"{API}/events/{event['id']}/registrations/{invited.json()['id']}")
        assert revoked.status_code == 200, revoked.text
        refused = sam.post(url)
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "event_not_found"
        assert sam.get(page).status_code == 404
    public = schedule(center, visibility="public", invitees=["sam@example.org"])
    with center.client("olga") as olga, center.client("sam") as sam:
        (registration,) = olga.get(f"{API}/events/{public['id']}/registrations").json()
        olga.delete(f"{API}/events/{public['id']}/registrations/{registration['id']}")
        refused = sam.post(f"{API}/events/{public['id']}/ticket")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "registration_revoked"
        assert (
            f'action="/events/{public["id"]}/ticket"' not in sam.get(f"/events/{public['id']}").text
        )


def test_a_ticket_lives_until_an_hour_after_the_event_ends(center: Center) -> None:
    default_tree(center)
    start = datetime.now(UTC) + timedelta(minutes=10)
    event = schedule(center, starts_at=start.isoformat(), duration_minutes=30)
    with center.client("olga") as olga:
        contents = open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
    end = datetime.fromisoformat(event["ends_at"]).timestamp()
    assert contents.not_after == int(end) + 3600


def test_roles_follow_presenters_and_registrations_and_strangers_get_nothing(
    center: Center,
) -> None:
    default_tree(center)
    add_member(center, "paula")
    add_member(center, "sam")
    event = schedule(center, presenters=["paula"], invitees=["mike@example.org"])
    with center.client("paula") as paula, center.client("mike") as mike:
        presenter = open_ticket(center, paula.post(f"{API}/events/{event['id']}/ticket"))
        participant = open_ticket(center, mike.post(f"{API}/events/{event['id']}/ticket"))
    assert (presenter.username, presenter.role) == ("paula", ticket.Role.PRESENTER)
    assert (participant.username, participant.role) == ("mike", ticket.Role.PARTICIPANT)
    assert credential_of(center, participant).role == ticket.Role.PARTICIPANT
    with center.client("sam") as sam:
        response = sam.post(f"{API}/events/{event['id']}/ticket")
        # As everywhere in the API, a private event one may not see does not exist.
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "event_not_found"
        assert sam.post(f"{API}/events/999999/ticket").status_code == 404
    assert len(due(center, event["id"]).credentials) == 2


def test_revoked_registrations_and_disabled_accounts_revoke_credentials(center: Center) -> None:
    default_tree(center)
    add_member(center, "rita")
    revoked = schedule(center, invitees=["mike@example.org"])
    dropped = schedule(center, invitees=["mike@example.org"])
    public = schedule(center, visibility="public")
    with center.client("olga") as olga, center.client("mike") as mike:
        by_revocation = open_ticket(center, mike.post(f"{API}/events/{revoked['id']}/ticket"))
        by_new_list = open_ticket(center, mike.post(f"{API}/events/{dropped['id']}/ticket"))
        registrations = olga.get(f"{API}/events/{revoked['id']}/registrations").json()
        (registration,) = [r for r in registrations if r["email"] == "mike@example.org"]
        response = olga.delete(f"{API}/events/{revoked['id']}/registrations/{registration['id']}")
        assert response.status_code == 200, response.text
        olga.patch(f"{API}/events/{dropped['id']}", json={"invitees": []})
        # And no new one: the private event is gone for him.
        again = mike.post(f"{API}/events/{revoked['id']}/ticket")
        assert again.status_code == 404
    with center.client("rita") as rita:
        by_account = open_ticket(center, rita.post(f"{API}/events/{public['id']}/ticket"))
    with center.sessions() as session:  # type: ignore[operator]
        user = accounts.user_by_name(session, "rita")
        assert user is not None
        user.active = False
        session.commit()
    for contents in (by_revocation, by_new_list, by_account):
        credential_id = sealed_id(center, contents)
        listed = due(center, contents.event_id)
        assert credential_id in listed.revoked
        assert credential_id not in listed.credentials


def test_a_public_event_admits_anyone_signed_in_and_guests_but_not_a_revoked_registrant(
    center: Center,
) -> None:
    default_tree(center)
    add_member(center, "rita")
    event = schedule(center, visibility="public", invitees=["rita@example.org"])
    private = schedule(center)
    with center.client("olga") as olga, center.client("mike") as mike:
        contents = open_ticket(center, mike.post(f"{API}/events/{event['id']}/ticket"))
        assert (contents.username, contents.role) == ("mike", ticket.Role.PARTICIPANT)
        registrations = olga.get(f"{API}/events/{event['id']}/registrations").json()
        (rita,) = [r for r in registrations if r["email"] == "rita@example.org"]
        olga.delete(f"{API}/events/{event['id']}/registrations/{rita['id']}")
    with center.client("rita") as client:
        response = client.post(f"{API}/events/{event['id']}/ticket")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "registration_revoked"

    url = f"{center.url}{API}/events/{event['id']}/ticket"
    named = open_ticket(center, httpx.post(url, json={"display_name": "  Vera Visitor "}))
    assert re.fullmatch(r"guest-[a-z0-9]{8}", named.username)
    assert (named.display_name, named.role) == ("Vera Visitor", ticket.Role.PARTICIPANT)
    unnamed = open_ticket(center, httpx.post(url))
    assert unnamed.display_name == "Guest" and unnamed.username != named.username
    assert credential_of(center, named).username == named.username
    assert httpx.post(url, json={"display_name": "x" * 101}).status_code == 422
    assert httpx.post(url, json={"display_name": "a\u202eb"}).status_code == 422
    assert httpx.post(url, json={"role": "moderator"}).status_code == 422
    # Not signed in, a private or unknown event is not there to join.
    for event_id in (private["id"], 999999):
        response = httpx.post(f"{center.url}{API}/events/{event_id}/ticket")
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_signed_in"


def test_no_ticket_without_a_tree_nor_for_cancelled_or_ended_events(center: Center) -> None:
    cancelled = schedule(center)
    ended = schedule(center, starts_at="2021-01-01T10:00:00Z")
    with center.client("olga") as olga:
        response = olga.post(f"{API}/events/{cancelled['id']}/ticket")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "no_tree"
        default_tree(center)
        assert olga.delete(f"{API}/events/{cancelled['id']}").status_code == 200
        response = olga.post(f"{API}/events/{cancelled['id']}/ticket")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "event_cancelled"
        response = olga.post(f"{API}/events/{ended['id']}/ticket")
        assert response.status_code == 409
        assert response.json()["error"]["code"] == "event_ended"
    # The cancelled event is still due, flagged, so the Controller tears it down.
    assert due(center, cancelled["id"]).cancelled


def test_the_captured_proxy_cookies_ride_in_a_ticket_for_an_https_center(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path / "https",
        database_url,
        base_url="https://townhall.example.org",
        sso={"capture_cookies": [PROXY_COOKIE, "theme", "lang"], "trusted_proxies": ["127.0.0.1"]},
    )
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("ada", role="admin")
        center.add_user("olga", role="organizer")
        default_tree(center)
        event = schedule(center)
        # "lang" is captured too, but a backslash may not reach a Cookie header (RFC 6265).
        cookie = f'{PROXY_COOKIE}=c2Vzc2lvbg.x-y_z; theme="dark"; other=1; lang=a\\b'
        with center.client("olga") as olga:
            response = olga.post(f"{API}/events/{event['id']}/ticket", headers={"Cookie": cookie})
        contents = open_ticket(center, response)
    assert contents.center_url == "https://townhall.example.org"
    assert dict(contents.cookies) == {PROXY_COOKIE: "c2Vzc2lvbg.x-y_z", "theme": '"dark"'}


def test_a_ticket_pointing_at_plain_http_carries_no_proxy_cookie(
    center: Center, caplog: pytest.LogCaptureFixture
) -> None:
    # center.base_url unset: the ticket names http://127.0.0.1:port, where the
    # participant application would send the proxy's session cookie in clear.
    default_tree(center)
    event = schedule(center)
    with center.client("olga") as olga:
        response = olga.post(
            f"{API}/events/{event['id']}/ticket", headers={"Cookie": f"{PROXY_COOKIE}=s3cret"}
        )
    contents = open_ticket(center, response)
    assert contents.center_url.startswith("http://")
    assert dict(contents.cookies) == {}
    # And the Center says so when it starts with such settings.
    with caplog.at_level(logging.WARNING, logger="townhall.center"):
        create_app(center.settings, run_workers=False)
    assert any(
        "capture_cookies" in record.getMessage() and "not HTTPS" in record.getMessage()
        for record in caplog.records
    )


def test_the_api_wants_json_from_a_browser_signed_in_by_cookie(center: Center) -> None:
    default_tree(center)
    event = schedule(center)
    # Signed in by a cookie, the API wants JSON (a cross-site form cannot send it).
    with signed_in(center, "olga") as browser:
        response = browser.post(f"{API}/events/{event['id']}/ticket")
        assert response.status_code == 415
        response = browser.post(f"{API}/events/{event['id']}/ticket", json={})
        assert open_ticket(center, response).username == "olga"


def test_the_join_button_downloads_a_ticket(center: Center) -> None:
    default_tree(center)
    event = schedule(center, visibility="public")
    with signed_in(center, "mike") as browser:
        page = browser.get(f"/events/{event['id']}")
        assert f'action="/events/{event["id"]}/ticket"' in page.text
        csrf = browser.cookies["townhall_csrf"]
        refused = browser.post(f"/events/{event['id']}/ticket", data={"csrf": "stale"})
        assert refused.status_code == 403
        response = browser.post(f"/events/{event['id']}/ticket", data={"csrf": csrf})
        contents = open_ticket(center, response)
        assert response.headers["content-disposition"].startswith("attachment;")
    assert (contents.username, contents.role) == ("mike", ticket.Role.PARTICIPANT)
    credential_of(center, contents)


def test_the_join_button_is_shown_only_to_who_may_join_while_it_is_possible(
    center: Center,
) -> None:
    private = schedule(center, invitees=["ada@example.org"])
    ended = schedule(center, starts_at="2021-01-01T10:00:00Z", visibility="public")
    page_of = f"/events/{private['id']}"
    with signed_in(center, "olga") as olga, signed_in(center, "ada") as ada:
        # No tree yet: a note instead of the button.
        page = olga.get(page_of).text
        assert "/ticket" not in page and "No live servers" in page
        default_tree(center)
        assert f'action="/events/{private["id"]}/ticket"' in olga.get(page_of).text
        assert "/ticket" in ada.get(page_of).text
        olga.post(f"{page_of}/cancel", data={"csrf": olga.cookies["townhall_csrf"]})
        assert "/ticket" not in olga.get(page_of).text
        assert "/ticket" not in olga.get(f"/events/{ended['id']}").text


def test_the_signing_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path / "data")
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: center_public_key(settings), range(16)))
    raw = {k.public_bytes_raw() for k in keys}
    assert len(raw) == 1
    path = signing_key_path(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]
    assert center_signing_key(settings).public_key().public_bytes_raw() in raw


def test_cookies_from_a_caller_that_is_not_a_trusted_proxy_are_not_captured(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path / "other", database_url, sso={"capture_cookies": [PROXY_COOKIE]}
    )
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("ada", role="admin")
        center.add_user("olga", role="organizer")
        default_tree(center)
        event = schedule(center)
        with center.client("olga") as olga:
            response = olga.post(
                f"{API}/events/{event['id']}/ticket", headers={"Cookie": f"{PROXY_COOKIE}=planted"}
            )
        assert dict(open_ticket(center, response).cookies) == {}


def test_tickets_are_signed_with_a_signing_key_replaced_on_disk(center_settings: Settings) -> None:
    """The Center keeps its key and CA in memory, yet a key rotated on disk signs the next
    ticket, without a restart (``open_ticket`` checks with the key on disk)."""
    server, center = start_center(center_settings)
    with server as url:
        center.url = url
        center.add_user("ada", role="admin")
        center.add_user("olga", role="organizer")
        default_tree(center)
        event = schedule(center)
        with center.client("olga") as olga:
            first = open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
            old = center_public_key(center.settings).public_bytes_raw()
            ticket.save_signing_key(Ed25519PrivateKey.generate(), signing_key_path(center.settings))
            second = open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
        assert center_public_key(center.settings).public_bytes_raw() != old
        assert second.event_id == first.event_id == event["id"]


def test_signed_in_walk_ins_are_capped_by_their_live_tickets_not_replaced_ones(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("townhall.center.live.MAX_EVENT_CREDENTIALS", 3)
    default_tree(center)
    for name in ("walt", "wren", "wyn"):
        add_member(center, name)
    event = schedule(center, visibility="public")
    url = f"{API}/events/{event['id']}/ticket"

    def ask(username: str) -> httpx.Response:
        with center.client(username) as client:
            return client.post(url)

    # Three tickets given, but walt's first was replaced: two live, room for one more.
    for username in ("walt", "walt", "mike"):
        assert ask(username).status_code == 200
    assert open_ticket(center, ask("wren")).username == "wren"
    refused = ask("wyn")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "too_many_tickets"
