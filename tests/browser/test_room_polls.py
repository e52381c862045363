"""The room page's Polls and Questions panels on a two-server tree, with a Python participant.

Olga (organizer, so moderator) is on ``main`` in her browser; Mike's browser is on
``child-a``; Pia is the Python participant on ``main``. Olga writes a poll, opens it,
watches the votes come in, shows the results to everyone and closes it; Mike votes
with the page's ballot; Mike asks a question anonymously, Pia upvotes it, Olga answers
it. What is checked is what each page and the Python participant show.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Page

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
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


def polls(page: Page) -> dict[str, dict[str, Any]]:
    return {p["question"]: p for p in room_state(page)["polls"]}


def test_a_poll_and_a_question_go_through_the_pages_and_the_python_participant(
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
    pia = PythonPeer(center, "pia", event_id, "main")
    try:
        pia.call(pia.watcher.participant.join())
        for page in (olga, mike):
            wait_until(lambda p=page: room_state(p)["server"] is not None, "joined", 30, page)
        assert room_state(mike)["server"] == "child-a"
        assert mike.is_hidden("#poll-form") and not olga.is_hidden("#poll-form")

        # Olga writes a poll: a draft only moderators see, until she opens it.
        olga.fill("#poll-question", "Lunch?")
        olga.fill("#poll-options", "pizza\nsoup\n")
        olga.click("#poll-form button[type=submit]")
        wait_until(lambda: polls(olga).get("Lunch?", {}).get("state") == "draft", "draft", 10, olga)
        assert polls(mike) == {}
        olga.click('#poll-list li[data-poll="1"] >> text=Open')
        wait_until(lambda: "Lunch?" in polls(mike), "the poll on child-a", 10, mike)

        # Mike votes with the ballot on child-a, Pia from Python on main.
        mike.check('#poll-list li[data-poll="1"] input[value="1"]')
        mike.click('#poll-list li[data-poll="1"] >> text=Vote')
        pia.do(lambda: pia.watcher.participant.vote(1, (0,)))
        wait_until(lambda: polls(olga)["Lunch?"]["counts"] == [1, 1], "two votes", 10, olga)
        assert mike.locator('#poll-list li[data-poll="1"] form.ballot').count() == 0
        # Reloaded, the page does not offer the ballot again (the server would refuse it).
        mike.reload()
        wait_until(lambda: "Lunch?" in polls(mike), "the poll after a reload", 30, mike)
        mike_poll = mike.locator('#poll-list li[data-poll="1"]')
        assert mike_poll.locator("form.ballot").count() == 0
        assert "You voted." in mike_poll.inner_text()
        assert polls(mike)["Lunch?"]["counts"] is None  # not shared yet
        olga.screenshot(path=str(screenshot_path("room-poll-moderator")), full_page=True)

        olga.click('#poll-list li[data-poll="1"] >> text=Show results to everyone')
        wait_until(lambda: polls(mike)["Lunch?"]["counts"] == [1, 1], "shared", 10, mike)
        olga.click('#poll-list li[data-poll="1"] >> text=Close')
        wait_until(lambda: polls(mike)["Lunch?"]["state"] == "closed", "closed", 10, mike)
        wait_until(
            lambda: pia.watcher.participant.polls[1].counts == (1, 1), "shared to pia", 10
        )

        # Mike asks anonymously; Pia upvotes; Olga sees who asked and answers.
        mike.fill("#question-text", "Is there a vegan option?")
        mike.check("#question-anonymous")
        mike.click("#question-form button[type=submit]")
        wait_until(lambda: len(pia.watcher.participant.questions) == 1, "the question", 10)
        asked = pia.watcher.participant.questions[0]
        assert asked.asker is None and asked.anonymous
        pia.do(lambda: pia.watcher.participant.upvote(asked.question_id))
        wait_until(
            lambda: [q["votes"] for q in room_state(olga)["questions"]] == [1], "upvote", 10, olga
        )
        assert room_state(olga)["questions"][0]["asker"] == "mike"
        # Mike's page hears the upvote later than Olga's: it comes down the link to child-a.
        wait_until(
            lambda: [q["votes"] for q in room_state(mike)["questions"]] == [1], "upvote", 10, mike
        )
        assert room_state(mike)["questions"][0]["asker"] is None  # as any participant sees it
        item = olga.locator('#question-list li[data-question="1"]')
        item.locator('input[aria-label="Written answer"]').fill("Yes, the soup.")
        item.locator("text=Answer").first.click()
        wait_until(
            lambda: room_state(mike)["questions"][0]["answer"] == "Yes, the soup.",
            "the answer",
            10,
            mike,
        )
        assert "Answer: Yes, the soup." in mike.inner_text("#question-list")
        mike.screenshot(path=str(screenshot_path("room-questions")), full_page=True)
        unlabelled = olga.evaluate(
            """() => [...document.querySelectorAll('#room button, #room select, #room input')]
              .filter((el) => !(el.textContent.trim() || el.closest('label') || el.ariaLabel))
              .map((el) => el.id || el.outerHTML)"""
        )
        assert unlabelled == []
    finally:
        pia.close()
