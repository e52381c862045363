"""The room page tells everyone the event is being recorded, and lets a moderator pause it.

An event with recording on, on a two-server tree: Olga (organizer, so moderator)
on ``main`` and Mike on ``child-a`` in their browsers, then a recorder joins as
``townhall record`` does (its own process, a recorder ticket from the Center's
API). What is checked is what each page shows: the badge appears on both pages
when the recorder joins, Olga pauses and resumes with the moderator's button
and Mike's badge follows, Mike has no such button, and the badge goes away
when the recorder leaves. The recorder is in the roster as "Recording".
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.browser_support import screenshot_path
from tests.browser.conftest import OpenBrowser
from tests.browser.room_support import (
    dev_ca_file,
    prepare_two_servers,
    record_console,
    room_state,
    run_two_servers,
    sign_in,
    wait_until,
)
from tests.e2e.e2e_support import LiveSystem, schedule_recorded, start_recorder
from tests.support import Center


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


def badge(page: Page) -> str | None:
    """The recording badge's text, or None while it is hidden."""
    return page.evaluate(
        "() => { const b = document.getElementById('recording'); return b.hidden ? null : b.textContent; }"
    )


def shown_names(page: Page) -> list[str]:
    return page.locator("#roster li .name").all_inner_texts()


def test_everyone_sees_the_recording_badge_and_a_moderator_pauses_and_resumes(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_recorded(center, "Recorded town meeting")
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
    assert badge(olga) is None and badge(mike) is None  # nobody records yet

    recorder = start_recorder(center, event_id, center.settings.data)
    try:
        for page in (olga, mike):
            wait_until(lambda p=page: badge(p) == "● Recording", "the badge", 30, page)
            # The recorder is in the roster as "Recording", not by its guest username.
            wait_until(lambda p=page: "Recording" in shown_names(p), "the recorder", 10, page)
            assert not any(name.startswith("guest-") for name in shown_names(page))
        assert olga.is_visible("#pause-recording") and not mike.is_visible("#pause-recording")

        olga.click("#pause-recording")
        for page in (mike, olga):
            wait_until(lambda p=page: badge(p) == "Recording paused", "paused", 10, page)
        assert olga.inner_text("#pause-recording") == "Resume the recording"
        mike.screenshot(path=str(screenshot_path("room-recording-paused")), full_page=True)

        olga.click("#pause-recording")
        for page in (mike, olga):
            wait_until(lambda p=page: badge(p) == "● Recording", "resumed", 10, page)
    finally:
        recorder.send_signal(signal.SIGTERM)  # stops the recording and closes the file
        exit_status = recorder.wait(timeout=30)
    assert exit_status == 0
    for page in (olga, mike):
        wait_until(lambda p=page: badge(p) is None, "no badge once the recorder left", 30, page)
