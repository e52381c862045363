"""The room page tells the user plainly what is wrong: sign-in, no ticket, devices, lost servers.

Each case is what a person would meet: not signed in, an event without live servers,
a page where audio and video cannot work, a microphone and a camera refused, every live
server gone. The text asserted is the text the page shows.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import OpenBrowser
from tests.browser.room_support import (
    describe,
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


def problems(page: Page) -> str:
    return page.inner_text("#problems")


def test_a_visitor_not_signed_in_is_asked_to_sign_in(
    center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_now(center)
    page = open_browser().new_page()
    page.goto(f"{center.url}/events/{event_id}/room")
    wait_until(lambda: "Sign in to the Center" in problems(page), "the sign-in request", 20, page)
    link = page.get_by_role("link", name="Sign in")
    assert link.get_attribute("href") == f"/login?next=%2Fevents%2F{event_id}%2Froom"
    assert page.inner_text("#status") == "Not joined."


def test_an_event_without_live_servers_says_why_there_is_no_ticket(
    center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_now(center)
    page = open_browser().new_page()
    sign_in(page, center, "mike", f"/events/{event_id}/room")
    wait_until(lambda: "No ticket for this event" in problems(page), "the reason", 20, page)
    assert page.is_hidden("#room")


def test_a_page_that_cannot_have_audio_and_video_says_so(
    center: Center, open_browser: OpenBrowser
) -> None:
    # The Center reached by a name that is not loopback, over http: not a secure context.
    insecure = center.url.replace("127.0.0.1", "center.invalid")
    page = open_browser(
        extra_args=["--host-resolver-rules=MAP center.invalid 127.0.0.1"]
    ).new_page()
    page.goto(f"{insecure}/events/1/room")
    wait_until(
        lambda: "Audio and video cannot work here" in problems(page), "the warning", 20, page
    )
    assert "a secure (HTTPS) page" in problems(page)


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


def test_refused_devices_and_lost_servers_are_told_and_retried(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    # This browser refuses every device, as a user clicking "Block" does.
    olga = record_console(
        open_browser(
            ca_files=[dev_ca_file(center)], extra_args=["--use-fake-ui-for-media-stream=deny"]
        ).new_page()
    )
    sign_in(olga, center, "olga", f"/events/{event_id}/room")
    wait_until(lambda: room_state(olga)["server"] is not None, "joined", 30, olga)

    olga.click("#take-floor")  # allowed to speak: the page starts the microphone
    wait_until(lambda: "You refused the microphone" in problems(olga), "the refusal", 30, olga)
    olga.click("#share-camera")
    wait_until(lambda: "You refused the camera" in problems(olga), "the refusal", 30, olga)
    assert olga.get_attribute("#share-camera", "aria-pressed") == "false"

    # Mike comes and leaves: the others see him go, his page says he left.
    mike = open_browser(ca_files=[dev_ca_file(center)]).new_page()
    sign_in(mike, center, "mike", f"/events/{event_id}/room")
    wait_until(lambda: len(room_state(olga)["roster"]) == 2, "mike here", 30, olga, mike)
    mike.click("#leave")
    wait_until(lambda: len(room_state(olga)["roster"]) == 1, "mike gone", 30, olga, mike)
    assert mike.inner_text("#status") == "You left the event."
    assert mike.is_disabled("#hand")

    for name in ("main", "child-a"):
        system.kill(name, signal.SIGKILL)
    wait_until(
        lambda: "was lost" in problems(olga) and "reconnecting, try" in problems(olga),
        "the retry notice",
        30,
        olga,
    )
    wait_until(
        lambda: "No live server took us back after 8 tries" in problems(olga),
        "the final notice",
        120,
        olga,
    )
    assert room_state(olga)["ended"]["reason"] == "connection-lost", describe(olga)
