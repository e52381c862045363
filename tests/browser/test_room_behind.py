"""A page that fell behind is told, briefly and without an alert, what its server skipped.

Real parts throughout: the two-server tree as processes (``room_support``), Olga's page
in Debian's Chromium, Pia's Python participant sending video. Olga's page then stops
reading for a few seconds (its main thread busy, as on an overloaded machine): her live
server drops the video queued for her past its age and byte bounds, and once the page
reads again the server's ``MediaDropped`` shows as a status line that then fades away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

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
from tests.e2e.e2e_support import LiveSystem
from tests.support import Center
from townhall.wire import Codec

# Keeps the page's main thread busy: no WebSocket message is read meanwhile.
BUSY = "(ms) => { const end = performance.now() + ms; while (performance.now() < end) {} }"


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


def names(page: Page) -> set[str]:
    return {member["name"] for member in room_state(page)["roster"]}


def test_a_page_that_stopped_reading_is_told_its_video_was_skipped(
    system: LiveSystem, center: Center, open_browser: OpenBrowser
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    olga = record_console(open_browser(ca_files=[dev_ca_file(center)]).new_page())
    sign_in(olga, center, "olga", f"/events/{event_id}/room")
    wait_until(lambda: room_state(olga)["server"] is not None, "olga joined", 30, olga)
    pia = PythonPeer(center, "pia", event_id, "main")
    try:
        participant = pia.watcher.participant
        pia.call(participant.join())
        wait_until(lambda: "pia" in names(olga), "pia in olga's roster", 30, olga)
        olga.select_option("#target", "pia")
        olga.click("#give-floor")
        wait_until(lambda: olga.inner_text("#floor") == "pia holds the floor.", "pia's floor")
        stream = pia.call(participant.open_stream(Codec.VP8))
        wait_until(
            lambda: any(s["owner"] == "pia" for s in room_state(olga)["streams"]),
            "pia's stream at olga",
            30,
            olga,
        )
        assert olga.is_hidden("#behind")

        async def send_video() -> None:  # deltas, about 2 MB a second for 3 s
            for n in range(60):
                participant.send_media(stream, b"\x00" * 100_000, n * 50_000)
                await asyncio.sleep(0.05)

        sending = asyncio.run_coroutine_threadsafe(send_video(), pia.loop)
        olga.evaluate(BUSY, 4000)
        sending.result(timeout=30)

        wait_until(lambda: not olga.is_hidden("#behind"), "the notice", 30, olga)
        skipped = room_state(olga)["skipped"]
        assert skipped["video"] > 0 and skipped["audio"] == 0
        note = olga.locator("#behind")
        assert note.get_attribute("role") == "status"
        assert note.inner_text().startswith("Your connection is behind: 0 audio / ")
        assert note.inner_text().endswith(" video frames skipped.")
        assert olga.inner_text("#problems") == ""  # a notice, not an alert
        wait_until(lambda: olga.is_hidden("#behind"), "the notice gone", 30, olga)
        assert room_state(olga)["ended"] is None  # and olga is still in the event
    finally:
        pia.close()
