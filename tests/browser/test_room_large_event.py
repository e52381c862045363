"""A large event in the room page: past the roster limit a participant's page lists the
stage and counts everyone, while the moderator's page lists everyone (live/stage.py), the
first 200 of a crowd with the stage first.

The servers' roster limit is 2, so three members make the event large. Olga
(organizer, so moderator) is on ``main`` in her browser, Mike's browser on ``child-a``,
and Python participants Pia and Quinn (and a crowd of 230) on ``main``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from tests.browser.browser_support import screenshot_path
from tests.browser.conftest import OpenBrowser
from tests.browser.room_support import (
    PythonPeer,
    dev_ca_file,
    live_event,
    open_room,
    prepare_two_servers,
    room_state,
    run_two_servers,
    wait_until,
)
from tests.e2e.e2e_support import LiveSystem, Watcher, ticket_for
from tests.support import Center
from townhall.center import accounts

CROWD = 230  # more than the page lists (room.js LISTED_AT_MOST, 200)


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    center.add_user("quinn")
    data = center.settings.data
    yield from run_two_servers(prepare_two_servers(center, data, live="roster_limit = 2\n"))


def listed(state: dict[str, object]) -> list[str]:
    return sorted(member["name"] for member in state["roster"])  # type: ignore[attr-defined]


def test_past_the_roster_limit_a_page_lists_the_stage_and_counts_everyone(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = live_event(system, center)
    ca = [dev_ca_file(center)]
    olga = open_room(open_browser(ca_files=ca), center, "olga", event_id, "main")
    mike = open_room(open_browser(ca_files=ca), center, "mike", event_id, "child-a")
    assert room_state(mike)["everyoneListed"]  # two members: at the limit
    assert mike.inner_text("#roster-heading") == "Present"

    pia = PythonPeer(center, "pia", event_id, "main")
    quinn = None
    try:
        pia.call(pia.watcher.participant.join())
        wait_until(lambda: not room_state(mike)["everyoneListed"], "the stage view", 15, mike)
        wait_until(lambda: room_state(mike)["attendance"] == 3, "three counted", 15, mike)
        assert listed(room_state(mike)) == ["mike", "olga"]
        assert mike.inner_text("#roster-heading") == "On stage"
        assert mike.is_visible("#stage-note")
        assert "(3 here)" in mike.inner_text("#attendance")
        wait_until(
            lambda: listed(room_state(olga)) == ["mike", "olga", "pia"], "everyone", 15, olga
        )
        assert room_state(olga)["everyoneListed"]

        quinn = PythonPeer(center, "quinn", event_id, "main")
        quinn.call(quinn.watcher.participant.join())
        wait_until(lambda: "(4 here)" in mike.inner_text("#attendance"), "four counted", 15, mike)
        assert listed(room_state(mike)) == ["mike", "olga"]

        pia.do(lambda: pia.watcher.participant.raise_hand())
        wait_until(lambda: "pia" in listed(room_state(mike)), "a hand on stage", 15, mike)
        assert "pia" in room_state(mike)["hands"]
        mike.screenshot(path=str(screenshot_path("room-large-event")), full_page=True)
        mike.set_viewport_size({"width": 390, "height": 844})  # a phone
        mike.screenshot(path=str(screenshot_path("room-large-event-phone")), full_page=True)
    finally:
        pia.close()
        if quinn is not None:
            quinn.close()


class Crowd:
    """``CROWD`` Python participants on one event loop thread, joined at most 32 at a time."""

    def __init__(self, center: Center, event_id: int) -> None:
        with center.sessions() as session:  # type: ignore[operator]
            for n in range(CROWD):
                accounts.create_user(session, f"crowd{n:03d}")  # no password: nothing to hash
            session.commit()
        tickets = [ticket_for(center, f"crowd{n:03d}", event_id) for n in range(CROWD)]
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watchers: list[Watcher] = self.call(self._join(tickets))

    @staticmethod
    async def _join(tickets: list[object]) -> list[Watcher]:
        slots = asyncio.Semaphore(32)
        watchers = [Watcher(ticket, "main") for ticket in tickets]  # type: ignore[arg-type]

        async def join(watcher: Watcher) -> None:
            async with slots:
                await watcher.participant.join()

        await asyncio.gather(*(join(watcher) for watcher in watchers))
        return watchers

    def call(self, coroutine: object, timeout: float = 120) -> list[Watcher]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self) -> None:
        async def leave() -> list[Watcher]:
            await asyncio.gather(*(w.participant.leave() for w in self.watchers))
            return []

        try:
            self.call(leave(), timeout=60)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


def test_a_moderator_page_lists_the_first_200_of_a_crowd_with_the_stage_first(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = live_event(system, center)
    olga = open_room(open_browser(ca_files=[dev_ca_file(center)]), center, "olga", event_id, "main")
    crowd = Crowd(center, event_id)
    try:
        here = f"({CROWD + 1} here)"
        wait_until(lambda: here in olga.inner_text("#attendance"), "the crowd", 60, olga)
        wait_until(lambda: olga.locator("#roster-more").count() == 1, "the list's end", 10, olga)
        assert olga.locator("#roster > li[data-name]").count() == 200
        assert olga.inner_text("#roster-more") == f"and {CROWD + 1 - 200} more"
        first = olga.locator("#roster > li[data-name]").first
        assert first.get_attribute("data-name") == "olga"  # the stage first

        last = crowd.watchers[-1]  # crowd229: past the first 200 by name
        crowd.loop.call_soon_threadsafe(last.participant.raise_hand)
        shown = '#roster > li[data-name="crowd229"]'
        wait_until(lambda: olga.locator(shown).count() == 1, "a raised hand listed", 15, olga)
        assert "hand raised" in olga.inner_text(shown)
        assert olga.locator("#roster > li[data-name]").count() == 200
        # The moderation menu offers whom the list shows, herself aside.
        assert olga.locator("#target option").count() == 199
        assert olga.locator('#target option[value="crowd229"]').count() == 1
        olga.screenshot(path=str(screenshot_path("room-crowd-moderator")), full_page=True)
    finally:
        crowd.close()
    wait_until(lambda: "(1 here)" in olga.inner_text("#attendance"), "the crowd gone", 30, olga)
    assert olga.locator("#roster-more").count() == 0
