"""Remove means removed, and powers follow the event, through the whole system (issue 10).

The Center, the Controller and three live servers run as in
``test_live_event_e2e``. A moderator's Remove on the live event reaches the
Center (the main server reports it on its control link, the Controller
records it), and the removed user's next ticket request is refused while an
unrelated user's is not, until a moderator lets them back in. A moderator
the organizer demotes loses the connection that her old credential opened,
and comes back with what she is now.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.e2e_support import LiveSystem, Watcher, running_system, ticket_for
from tests.e2e.test_live_event_e2e import schedule_now
from tests.support import Center
from townhall.wire import ByeReason


@pytest.fixture
def system(center: Center, tmp_path: Path) -> Iterator[LiveSystem]:
    for name in ("pia", "quinn", "paula"):
        center.add_user(name)
    prepared = LiveSystem.prepare(center, center.settings.data)
    yield from running_system(prepared)


async def ticket_answer(center: Center, username: str, event_id: int) -> httpx.Response:
    def ask() -> httpx.Response:
        with center.client(username) as client:
            return client.post(f"/api/v1/events/{event_id}/ticket")

    return await asyncio.to_thread(ask)


async def until_refused(center: Center, username: str, event_id: int) -> httpx.Response:
    """Ask for tickets until the Center refuses one (the removal travels through the tree)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = await ticket_answer(center, username, event_id)
        if response.status_code != 200:
            return response
        await asyncio.sleep(0.3)
    raise AssertionError(f"{username} still gets tickets")


async def test_a_removed_user_cannot_come_back_with_a_new_ticket_until_let_back_in(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        await system.wait_state(api, event_id, "ready")
    olga = Watcher(ticket_for(center, "olga", event_id), "main")
    quinn = Watcher(ticket_for(center, "quinn", event_id), "child-a")
    for watcher in (olga, quinn):
        await watcher.participant.join()
    await olga.wait_for(lambda: "quinn" in olga.participant.roster, "quinn joined")

    olga.participant.remove("quinn")
    await quinn.wait_for(lambda: quinn.left() is not None, "removal")
    refused = await until_refused(center, "quinn", event_id)
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["code"] == "removed"
    assert (await ticket_answer(center, "pia", event_id)).status_code == 200

    with center.client("olga") as api:
        (removal,) = api.get(f"/api/v1/events/{event_id}/removals").json()
        assert (removal["username"], removal["removed_by"]) == ("quinn", "olga")
        back = api.post(f"/api/v1/events/{event_id}/removals/{removal['id']}/let-back-in")
        assert back.status_code == 200, back.text
    again = Watcher(ticket_for(center, "quinn", event_id), "child-a")
    await again.participant.join()
    await olga.wait_for(lambda: "quinn" in olga.participant.roster, "quinn back")
    for watcher in (olga, again):
        await watcher.participant.leave()


async def test_a_demoted_moderator_is_closed_and_rejoins_as_what_she_is_now(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        assert api.patch(f"/api/v1/events/{event_id}", json={"moderators": ["paula"]}).is_success
        await system.wait_state(api, event_id, "ready")
    paula = Watcher(ticket_for(center, "paula", event_id), "child-dmz")
    await paula.participant.join()
    assert paula.participant.moderator

    with center.client("olga") as api:
        assert api.patch(f"/api/v1/events/{event_id}", json={"moderators": []}).is_success
    await paula.wait_for(lambda: paula.left() is not None, "the revoked credential closed")
    left = paula.left()
    assert left is not None and left.reason is ByeReason.REMOVED
    demoted = Watcher(ticket_for(center, "paula", event_id), "child-dmz")
    await demoted.participant.join()
    assert not demoted.participant.moderator
    await demoted.participant.leave()
