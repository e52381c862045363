"""The room page shows people by the names they gave, as text, on a two-server tree.

A guest who is not signed in asks the Center for a ticket as "Alice" and joins ``main``
with the Python participant; Hanna, whose account's name is ``<b>Hanna</b> & co``,
joins ``child-a`` in her browser; Olga (organizer) joins ``main`` in hers. Each page
shows Alice and Hanna by those names in the roster and as chat senders, with the
username as the tooltip, and Hanna's name literally: no markup is made of it. The guest
sees Hanna's name, and its own, in what the Python participant reports.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page

from tests.browser.conftest import OpenBrowser
from tests.browser.room_support import (
    PythonPeer,
    dev_ca_file,
    prepare_two_servers,
    record_console,
    room_state,
    run_two_servers,
    schedule_now,
    sign_in,
    wait_until,
)
from tests.e2e.e2e_support import LiveSystem, Watcher
from tests.support import Center
from townhall.center import accounts
from townhall.client.events import ChatReceived, Joined
from townhall.ticket import open_ticket

HANNA = "<b>Hanna</b> & co"


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    with center.sessions() as session:  # type: ignore[operator]
        accounts.create_user(
            session, "hanna", password="correct horse", display_name=HANNA, role="member"
        )
        session.commit()
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


class GuestPeer(PythonPeer):
    """A Python participant with a guest's ticket: not signed in, a name typed on the page."""

    def __init__(self, center: Center, typed: str, event_id: int, server: str) -> None:
        with httpx.Client(base_url=center.url, timeout=20) as client:
            response = client.post(
                f"/api/v1/events/{event_id}/ticket", json={"display_name": typed}
            )
        assert response.status_code == 200, response.text
        ticket = open_ticket(response.content, center_public_key=None, now=int(time.time()))
        assert ticket.username.startswith("guest-") and ticket.display_name == typed
        self.username = ticket.username
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watcher: Watcher = self.call(self._make(ticket, server))


def roster_labels(page: Page) -> dict[str, tuple[str, str | None]]:
    """Each roster entry's username (data-name) -> the name shown and its tooltip."""
    labels: dict[str, tuple[str, str | None]] = {}
    for item in page.locator("#roster li").all():
        label = item.locator(".name")
        labels[str(item.get_attribute("data-name"))] = (
            label.inner_text(),
            label.get_attribute("title"),
        )
    return labels


def chat_senders(page: Page) -> list[tuple[str, str | None]]:
    return [
        (sender.inner_text(), sender.get_attribute("title"))
        for sender in page.locator("#chat-log li strong").all()
    ]


def chat_state(page: Page) -> list[dict[str, Any]]:
    chat: list[dict[str, Any]] = room_state(page)["chat"]
    return chat


def test_guests_and_users_are_shown_by_the_names_they_gave_and_markup_stays_text(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    ca = [dev_ca_file(center)]
    olga = record_console(open_browser(ca_files=ca).new_page())
    sign_in(olga, center, "olga", f"/events/{event_id}")
    olga.goto(f"{center.url}/events/{event_id}/room?server=main")
    hanna = record_console(open_browser(ca_files=ca).new_page())
    sign_in(hanna, center, "hanna", "/events")
    hanna.goto(f"{center.url}/events/{event_id}/room?server=child-a")
    alice = GuestPeer(center, "Alice", event_id, "main")
    guest = alice.username
    try:
        alice.call(alice.watcher.participant.join())
        for page in (olga, hanna):
            wait_until(lambda p=page: room_state(p)["server"] is not None, "joined", 30, page)
        assert room_state(hanna)["server"] == "child-a"
        # Hanna's own page says who she is, as text.
        assert hanna.inner_text("#who").startswith(HANNA)

        everyone = {"olga", "hanna", guest}
        for page in (olga, hanna):
            wait_until(lambda p=page: set(roster_labels(p)) == everyone, "everyone", 20, page)
            labels = roster_labels(page)
            assert labels[guest] == ("Alice", guest)
            assert labels["hanna"] == (HANNA, "hanna")
            assert labels["olga"] == ("olga", None)  # no display name: the username
            # Hanna's name made no element: it is text.
            assert page.locator("#roster b, #chat-log b").count() == 0

        # The guest sees the others, and itself, by the names they gave.
        participant = alice.watcher.participant
        alice.call(alice.watcher.wait_for(lambda: "hanna" in participant.roster, "hanna"))
        assert participant.roster["hanna"].display_name == HANNA
        assert participant.roster[guest].display_name == "Alice"
        (joined,) = [e for e in alice.watcher.events if isinstance(e, Joined)]
        assert joined.display_name == "Alice"

        # Chat: every page shows the sender by name; the identity stays in the tooltip.
        alice.do(lambda: participant.say("hello from Alice"))
        hanna.fill("#chat-text", "hi, I am Hanna")
        hanna.press("#chat-text", "Enter")
        for page in (olga, hanna):
            wait_until(lambda p=page: len(chat_state(p)) == 2, "both messages", 20, page)
            assert sorted(chat_senders(page)) == sorted([("Alice", guest), (HANNA, "hanna")])
            assert page.locator("#chat-log b").count() == 0
        alice.call(
            alice.watcher.wait_for(
                lambda: any(
                    isinstance(e, ChatReceived) and e.sender == "hanna"
                    for e in alice.watcher.events
                ),
                "hanna's message",
            )
        )
        (from_hanna,) = [
            e for e in alice.watcher.events if isinstance(e, ChatReceived) and e.sender == "hanna"
        ]
        assert from_hanna.shown_sender == HANNA

        # The moderator's target list names people by their names and keeps the username.
        option = olga.locator(f'#target option[value="{guest}"]')
        assert option.inner_text() == f"Alice ({guest})"
    finally:
        alice.close()
