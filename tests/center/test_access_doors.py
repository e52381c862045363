"""The doors of issue 10 at the Center, tried as an outsider would, against a real Center.

Nobody locks an event by asking for tickets; a removal reported by the live
event bars the person until a moderator lets them back; credentials follow the
event as it is now; and an email from the proxy opens nobody else's invitations.
"""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.center.test_join_tickets import (
    API,
    add_member,
    default_tree,
    due,
    open_ticket,
    schedule,
    sealed_id,
)
from tests.support import Center, make_settings, start_center
from townhall import ticket
from townhall.center import accounts, live
from townhall.center.accounts import CenterSecret
from townhall.center.tables import Registration, TicketCredential
from townhall.config import Settings

PROXY = {"trusted_proxies": ["127.0.0.1"], "email_header": "X-Remote-Email"}


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    # 127.0.0.1 is the trusted proxy: X-Forwarded-For names the client, X-Remote-User the user.
    return make_settings(
        tmp_path / "data",
        database_url,
        sso=PROXY,
        guest_tickets_per_address=3,
        guest_tickets_per_event=5,
    )


def anonymous_ticket(center: Center, event_id: int, address: str) -> httpx.Response:
    return httpx.post(
        f"{center.url}{API}/events/{event_id}/ticket", headers={"X-Forwarded-For": address}
    )


# --- 1. nobody can lock an event -------------------------------------------------------------


def test_an_attacker_filling_the_guest_quota_does_not_keep_the_organizer_or_invitees_out(
    center: Center,
) -> None:
    default_tree(center)
    add_member(center, "walt")
    event = schedule(center, visibility="public", invitees=["mike@example.org"])
    # One address gets a few guest tickets, then is told to slow down.
    for _ in range(3):
        assert anonymous_ticket(center, event["id"], "198.51.100.7").status_code == 200
    limited = anonymous_ticket(center, event["id"], "198.51.100.7")
    assert limited.status_code == 429
    assert limited.json()["error"]["code"] == "guest_rate_limited"
    # From many addresses the attacker fills the guests' quota of the event...
    assert anonymous_ticket(center, event["id"], "198.51.100.8").status_code == 200
    assert anonymous_ticket(center, event["id"], "198.51.100.9").status_code == 200
    full = anonymous_ticket(center, event["id"], "198.51.100.10")
    assert full.status_code == 409
    assert full.json()["error"]["code"] == "too_many_guest_tickets"
    # ...and the people with a right to attend, and signed-in walk-ins, still get theirs.
    with center.client("olga") as olga, center.client("mike") as mike:
        for _ in range(20):  # asking again and again replaces, it does not pile up
            organizer = open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
        invitee = open_ticket(center, mike.post(f"{API}/events/{event['id']}/ticket"))
    with center.client("walt") as walt:
        walk_in = open_ticket(center, walt.post(f"{API}/events/{event['id']}/ticket"))
    assert organizer.role is ticket.Role.MODERATOR
    assert (invitee.username, walk_in.username) == ("mike", "walt")
    listed = due(center, event["id"])
    assert len(listed.credentials) == 5 + 3
    assert sealed_id(center, organizer) in listed.credentials


def test_a_guest_with_a_personal_link_gets_one_credential_that_each_ticket_replaces(
    center: Center,
) -> None:
    default_tree(center)
    event = schedule(center, invitees=["gwen@partner.example"])
    link = invitation_link(center, event["id"], "gwen@partner.example")
    page = httpx.get(link)
    assert f'action="{link.removeprefix(center.url)}/ticket"' in page.text  # the Join button
    first = open_ticket(center, httpx.post(f"{link}/ticket"))
    second = open_ticket(center, httpx.post(f"{link}/ticket"))
    assert first.role is ticket.Role.PARTICIPANT and first.display_name == "gwen"
    listed = due(center, event["id"])
    assert set(listed.credentials) == {sealed_id(center, second)}
    forged = link[:-1] + ("0" if link[-1] != "0" else "1")
    assert httpx.post(f"{forged}/ticket").status_code == 404


def invitation_link(center: Center, event_id: int, email: str) -> str:
    """The personal link the invitation to ``email`` carries, as the Center signs it."""
    with center.sessions() as session:  # type: ignore[operator]
        registration = session.scalars(
            select(Registration).where(
                Registration.event_id == event_id, Registration.email == email
            )
        ).one()
    secret = CenterSecret.load_or_create(center.settings.data / "secret.key")
    return f"{center.url}/j/{registration.id}.{secret.sign('join', str(registration.id))}"


# --- 2. remove means removed ---------------------------------------------------------------


def report_removal(center: Center, event_id: int, removed: str, by: str) -> int:
    """What the Controller does with the main server's report (``live.record_removals``)."""
    with center.sessions() as session:  # type: ignore[operator]
        return live.record_removals(
            session, event_id, [live.ReportedRemoval(credential_id=removed, by_credential_id=by)]
        )


def test_a_removed_user_gets_no_new_ticket_until_a_moderator_lets_them_back_in(
    center: Center,
) -> None:
    default_tree(center)
    add_member(center, "rita")
    event = schedule(center, visibility="public", invitees=["mike@example.org"])
    url = f"{API}/events/{event['id']}/ticket"
    with center.client("olga") as olga, center.client("mike") as mike:
        moderator = sealed_id(center, open_ticket(center, olga.post(url)))
        # Removed while connected on a ticket that a newer one replaced since.
        removed = sealed_id(center, open_ticket(center, mike.post(url)))
        newer = sealed_id(center, open_ticket(center, mike.post(url)))
        assert report_removal(center, event["id"], removed, moderator) == 1
        assert report_removal(center, event["id"], removed, moderator) == 0  # reported again
        # The removed credential is revoked too: a restarted main server refuses it as well.
        assert {removed, newer} <= due(center, event["id"]).revoked
        refused = mike.post(url)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "removed"
        with center.client("rita") as rita:
            assert rita.post(url).status_code == 200  # an unrelated user is not concerned
        # The organizer sees who was removed, by whom, and lets them back in.
        (entry,) = olga.get(f"{API}/events/{event['id']}/removals").json()
        assert (entry["username"], entry["email"], entry["removed_by"]) == (
            "mike",
            "mike@example.org",
            "olga",
        )
        assert mike.get(f"{API}/events/{event['id']}/removals").status_code == 403
        back = olga.post(f"{API}/events/{event['id']}/removals/{entry['id']}/let-back-in")
        assert back.status_code == 200 and back.json()["lifted_by"] == "olga"
        assert mike.post(url).status_code == 200


def test_a_removed_guest_is_barred_by_link_and_an_anonymous_one_by_address(
    center: Center,
) -> None:
    default_tree(center)
    event = schedule(center, visibility="public", invitees=["gwen@partner.example"])
    link = invitation_link(center, event["id"], "gwen@partner.example")
    with center.client("olga") as olga:
        moderator = sealed_id(
            center, open_ticket(center, olga.post(f"{API}/events/{event['id']}/ticket"))
        )
    guest = sealed_id(center, open_ticket(center, httpx.post(f"{link}/ticket")))
    stranger = anonymous_ticket(center, event["id"], "203.0.113.5")
    report_removal(center, event["id"], guest, moderator)
    report_removal(center, event["id"], sealed_id(center, open_ticket(center, stranger)), moderator)
    barred = httpx.post(f"{link}/ticket")
    assert barred.status_code == 403 and "<code>removed</code>" in barred.text
    assert anonymous_ticket(center, event["id"], "203.0.113.5").status_code == 403
    assert anonymous_ticket(center, event["id"], "203.0.113.6").status_code == 200
    # A credential the event never issued is no removal at all.
    assert report_removal(center, event["id"], "notacredential00", moderator) == 0


def test_the_event_page_lists_removals_with_a_let_back_in_button(center: Center) -> None:
    default_tree(center)
    event = schedule(center, invitees=["mike@example.org"])
    url = f"{API}/events/{event['id']}/ticket"
    with center.client("olga") as olga, center.client("mike") as mike:
        moderator = sealed_id(center, open_ticket(center, olga.post(url)))
        report_removal(
            center, event["id"], sealed_id(center, open_ticket(center, mike.post(url))), moderator
        )
        page = olga.get(f"/events/{event['id']}")
        removed_page = mike.get(f"/events/{event['id']}")
    assert f'action="/events/{event["id"]}/ticket"' not in removed_page.text  # no Join button
    assert f'action="/events/{event["id"]}/ticket"' in page.text
    assert "Removed from the live event" in page.text
    assert f"/events/{event['id']}/removals/" in page.text and "Let back in" in page.text


# --- 3. powers and access follow the event as it is now -------------------------------------


def test_credentials_the_new_state_no_longer_allows_are_revoked(center: Center) -> None:
    default_tree(center)
    add_member(center, "paula")
    add_member(center, "rita")
    event = schedule(
        center,
        visibility="public",
        moderators=["paula"],
        presenters=["rita"],
        invitees=["mike@example.org"],
    )
    url = f"{API}/events/{event['id']}/ticket"
    with center.client("paula") as paula, center.client("rita") as rita:
        # An older ticket, replaced but maybe still holding a live connection.
        older = sealed_id(center, open_ticket(center, paula.post(url)))
        former_moderator = sealed_id(center, open_ticket(center, paula.post(url)))
        former_presenter = sealed_id(center, open_ticket(center, rita.post(url)))
    with center.client("mike") as mike:
        invitee = sealed_id(center, open_ticket(center, mike.post(url)))
    guest = sealed_id(
        center, open_ticket(center, anonymous_ticket(center, event["id"], "192.0.2.1"))
    )
    with center.client("olga") as olga:
        organizer = sealed_id(center, open_ticket(center, olga.post(url)))
        changed = olga.patch(
            f"{API}/events/{event['id']}", json={"moderators": [], "presenters": []}
        )
        assert changed.status_code == 200
        revoked = due(center, event["id"]).revoked
        assert {older, former_moderator, former_presenter} <= revoked
        assert invitee not in revoked and guest not in revoked
        # Demoted, paula asks again and gets what she is now: a participant.
        with center.client("paula") as paula:
            assert open_ticket(center, paula.post(url)).role is ticket.Role.PARTICIPANT
        olga.patch(f"{API}/events/{event['id']}", json={"visibility": "private"})
        revoked = due(center, event["id"]).revoked
        assert guest in revoked and invitee not in revoked and organizer not in revoked
        olga.patch(f"{API}/events/{event['id']}", json={"invitees": []})
        assert invitee in due(center, event["id"]).revoked
        assert organizer in due(center, event["id"]).credentials


# --- 4. an email address is not a key -------------------------------------------------------


def sso_account(center: Center, username: str) -> None:
    with center.sessions() as session:  # type: ignore[operator]
        accounts.create_user(session, username, source="sso")
        session.commit()


def test_an_email_from_the_proxy_does_not_open_someone_elses_invitations(
    center: Center, caplog: pytest.LogCaptureFixture
) -> None:
    center.add_user("ceo", email="ceo@partner.example")
    center.add_user("mallory", email="mallory@example.org")
    sso_account(center, "trudy")
    sso_account(center, "eve")
    event = schedule(
        center, title="Board only", invitees=["ceo@partner.example", "cfo@partner.example"]
    )
    page = f"{center.url}{API}/events/{event['id']}"

    def as_user(name: str, email: str) -> dict[str, str]:
        return {"X-Remote-User": name, "X-Remote-Email": email}

    # A local account keeps its own email, whatever the proxy says.
    me = httpx.get(f"{center.url}{API}/me", headers=as_user("mallory", "ceo@partner.example"))
    assert me.json()["email"] == "mallory@example.org"
    assert httpx.get(page, headers=as_user("mallory", "ceo@partner.example")).status_code == 404
    # An SSO account does not get an email another account holds: refused, and logged.
    with caplog.at_level(logging.WARNING, logger="townhall.center.auth"):
        me = httpx.get(f"{center.url}{API}/me", headers=as_user("trudy", "CEO@partner.example"))
    assert me.json()["email"] is None
    assert "ceo@partner.example" in caplog.text and "not used" in caplog.text
    assert httpx.get(page, headers=as_user("trudy", "ceo@partner.example")).status_code == 404
    # A free address fills the account, but nobody vouched for it: no invitation opens.
    me = httpx.get(f"{center.url}{API}/me", headers=as_user("eve", "cfo@partner.example"))
    assert me.json()["email"] == "cfo@partner.example"
    assert httpx.get(page, headers=as_user("eve", "cfo@partner.example")).status_code == 404
    with center.client("ceo") as ceo:
        assert ceo.get(f"{API}/events/{event['id']}").status_code == 200


def test_account_emails_are_unique_whatever_their_case(center: Center) -> None:
    with center.sessions() as session:  # type: ignore[operator]
        with pytest.raises(accounts.AccountError) as taken:
            accounts.create_user(session, "copycat", email="OLGA@example.org")
    assert taken.value.code == "email_taken"


def test_an_email_the_proxys_own_directory_vouches_for_opens_its_invitations(
    tmp_path: Path, database_url: str
) -> None:
    settings = make_settings(
        tmp_path / "trusting", database_url, sso={**PROXY, "trust_email": True}
    )
    server, running = start_center(settings)
    with server as url:
        running.url = url
        running.add_user("olga", role="organizer")
        sso_account(running, "cfo")
        event = schedule(running, invitees=["cfo@partner.example"])
        headers = {"X-Remote-User": "cfo", "X-Remote-Email": "cfo@partner.example"}
        seen = httpx.get(f"{url}{API}/events/{event['id']}", headers=headers)
        assert seen.status_code == 200
        assert seen.json()["my_registration"] == "registered"


def test_asking_for_many_tickets_neither_grows_the_lists_nor_escapes_a_removal(
    center: Center,
) -> None:
    default_tree(center)
    event = schedule(center, invitees=["mike@example.org"])
    url = f"{API}/events/{event['id']}/ticket"
    with center.client("olga") as olga, center.client("mike") as mike:
        moderator = sealed_id(center, open_ticket(center, olga.post(url)))
        first = sealed_id(center, open_ticket(center, mike.post(url)))
        for _ in range(live.KEPT_REPLACED + 3):
            last = sealed_id(center, open_ticket(center, mike.post(url)))
        listed = due(center, event["id"])
        assert set(listed.credentials) == {moderator, last} and not listed.revoked
        with center.sessions() as session:  # type: ignore[operator]
            kept = session.scalars(
                select(TicketCredential.id).where(TicketCredential.username == "mike")
            ).all()
        assert len(kept) == live.KEPT_REPLACED + 1 and first not in kept
        # Removed on the very first ticket, long pruned: the room's name still says who.
        with center.sessions() as session:  # type: ignore[operator]
            removal = live.ReportedRemoval(first, moderator, name="mike", by_name="olga")
            assert live.record_removals(session, event["id"], [removal]) == 1
        assert mike.post(url).json()["error"]["code"] == "removed"


def test_registering_oneself_with_an_unvouched_email_does_not_take_that_invitation(
    center: Center,
) -> None:
    sso_account(center, "eve")
    event = schedule(center, visibility="public")
    as_eve = {"X-Remote-User": "eve", "X-Remote-Email": "cfo@partner.example"}
    registered = httpx.post(
        f"{center.url}{API}/events/{event['id']}/registrations", headers=as_eve, json={}
    )
    assert registered.status_code == 201, registered.text
    assert registered.json()["email"] == "eve@users.invalid"
    with center.client("olga") as olga:
        olga.patch(f"{API}/events/{event['id']}", json={"invitees": ["cfo@partner.example"]})
        olga.patch(f"{API}/events/{event['id']}", json={"visibility": "private"})
        people = olga.get(f"{API}/events/{event['id']}/registrations").json()
    assert {(p["email"], p["username"]) for p in people} == {
        ("eve@users.invalid", "eve"),
        ("cfo@partner.example", None),
    }
