"""A large event in the room page: past the roster limit a participant's page lists the
stage and counts everyone, while the moderator's page lists everyone (live/stage.py).

The servers' roster limit is 2, so three members make the event large. Olga
(organizer, so moderator) is on ``main`` in her browser, Mike's browser on ``child-a``,
and Python participants Pia and Quinn on ``main``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.browser.browser_support import screenshot_path
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
from tests.e2e.e2e_support import LiveSystem
from tests.support import Center


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
    event_id = schedule_now(center)
    with center.client("olga") as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    ca = [dev_ca_file(center)]
    olga = record_console(open_browser(ca_files=ca).new_page())
    sign_in(olga, center, "olga", f"/events/{event_id}")
    olga.goto(f"{center.url}/events/{event_id}/room?server=main")
    mike = record_console(open_browser(ca_files=ca).new_page())
    sign_in(mike, center, "mike", "/events")
    mike.goto(f"{center.url}/events/{event_id}/room?server=child-a")
    for page in (olga, mike):
        wait_until(lambda p=page: room_state(p)["server"] is not None, "joined", 30, page)
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
        wait_until(lambda: listed(room_state(olga)) == ["mike", "olga", "pia"], "everyone", 15, olga)
        assert room_state(olga)["everyoneListed"]

        quinn = PythonPeer(center, "quinn", event_id, "main")
        quinn.call(quinn.watcher.participant.join())
        wait_until(lambda: "(4 here)" in mike.inner_text("#attendance"), "four counted", 15, mike)
        assert listed(room_state(mike)) == ["mike", "olga"]

        pia.do(lambda: pia.watcher.participant.raise_hand())
        wait_until(lambda: "pia" in listed(room_state(mike)), "a hand on stage", 15, mike)
        assert "pia" in room_state(mike)["hands"]
        mike.screenshot(path=str(screenshot_path("room-large-event")), full_page=True)
    finally:
        pia.close()
        if quinn is not None:
            quinn.close()
