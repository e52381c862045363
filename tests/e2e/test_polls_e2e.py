"""Polls and questions end to end: voted on three live servers, kept with the event in the Center.

Center, Controller and three live servers run as on loopback in production
(processes, TLS). Olga (organizer, moderator) is on the main server, Mike on
child-a, Pia on the DMZ server. Olga opens a poll; everyone votes once (Mike
twice: refused); Mike asks anonymously and Pia upvotes; Olga answers and
closes the poll. The main server reports its record through the Controller,
and the Center's API then shows the closed poll with its results and the
question with its asker, to the organizer only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_support import LiveSystem, Watcher, running_system, ticket_for
from tests.e2e.test_live_event_e2e import schedule_now
from tests.support import Center
from townhall.client.events import RequestRefused
from townhall.wire import ErrorCode, PollState


@pytest.fixture
def system(center: Center, tmp_path: Path) -> Iterator[LiveSystem]:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    yield from running_system(prepared)


async def test_a_poll_voted_on_three_servers_is_kept_with_the_event(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        await system.wait_state(api, event_id, "ready")
    placement = {"olga": "main", "mike": "child-a", "pia": "child-dmz"}
    people = {n: Watcher(ticket_for(center, n, event_id), s) for n, s in placement.items()}
    for watcher in people.values():
        await watcher.participant.join()
    olga, mike, pia = (people[n].participant for n in ("olga", "mike", "pia"))

    olga.create_poll("Lunch?", ("pizza", "soup", "salad"))
    await people["olga"].wait_for(lambda: 1 in olga.polls, "the draft")
    olga.open_poll(1)
    for watcher in people.values():
        p = watcher.participant
        await watcher.wait_for(
            lambda p=p: 1 in p.polls and p.polls[1].state is PollState.OPEN, "the open poll"
        )
    olga.vote(1, (0,))
    mike.vote(1, (1,))
    pia.vote(1, (1,))
    mike.vote(1, (2,))
    await people["mike"].wait_for(
        lambda: any(isinstance(e, RequestRefused) for e in people["mike"].events), "refusal"
    )
    refused = [e for e in people["mike"].events if isinstance(e, RequestRefused)]
    assert refused == [RequestRefused(ErrorCode.NOT_ALLOWED, "you have voted in poll 1 already")]
    await people["olga"].wait_for(lambda: olga.polls[1].counts == (1, 2, 0), "three votes")

    mike.ask("Is there a vegan option?", anonymous=True)
    await people["pia"].wait_for(lambda: len(pia.questions) == 1, "the question")
    assert pia.questions[0].asker is None
    pia.upvote(1)
    # Olga's copy of the question may arrive after Pia's: this test reads all three sockets.
    await people["olga"].wait_for(
        lambda: bool(olga.questions) and olga.questions[0].votes == 1, "the upvote"
    )
    olga.answer(1, "Yes: the soup.")
    olga.close_poll(1)

    def kept() -> dict[str, Any]:
        with center.client("olga") as api:
            response = api.get(f"/api/v1/events/{event_id}/polls")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def settled(record: dict[str, Any]) -> bool:
        return [p["state"] for p in record["polls"]] == ["closed"] and [
            q["state"] for q in record["questions"]
        ] == ["answered"]

    deadline = asyncio.get_running_loop().time() + 30
    while not settled(record := kept()):  # the Controller passes it on within a report or two
        assert asyncio.get_running_loop().time() < deadline, f"never kept: {record}"
        await asyncio.sleep(0.2)
    (poll,) = record["polls"]
    assert (poll["counts"], poll["voters"]) == ([1, 2, 0], 3)
    (question,) = record["questions"]
    assert (question["asker"], question["anonymous"], question["votes"]) == ("mike", True, 1)
    assert question["answer"] == "Yes: the soup."
    with center.client("mike") as api:
        assert api.get(f"/api/v1/events/{event_id}/polls").status_code == 403
    for watcher in people.values():
        await watcher.participant.leave()
