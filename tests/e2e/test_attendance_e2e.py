"""Attendance through the whole system (issue 13): live servers, Controller, Center.

A two-server tree (the main server inside, a child in the DMZ) runs as real
``townhall live`` and ``townhall controller`` processes beside the Center.
Two participants join, leave and rejoin on different servers; the DMZ
server is then killed with SIGKILL while one of them is on it. The
organizer's attendance (JSON, CSV, the event page) shows each stay on the
right server and zone, at times inside the moments the test made them
happen, with the right totals; the stay the killed server took with it is
closed at the last time it was heard of and marked, and the report says it
is incomplete. Someone who does not manage the event is refused it.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.e2e_support import LiveSystem, ServerSpec, Watcher, running_system, ticket_for
from tests.e2e.test_live_event_e2e import schedule_now
from tests.support import Center

TWO = (ServerSpec("main", "internal", None), ServerSpec("child-dmz", "dmz", "main"))


@pytest.fixture
def system(center: Center, tmp_path: Path) -> Iterator[LiveSystem]:
    for name in ("pia", "quinn"):
        center.add_user(name)
    yield from running_system(LiveSystem.prepare(center, center.settings.data, tree=TWO))


def attendance(center: Center, event_id: int) -> dict[str, Any]:
    with center.client("olga") as api:
        response = api.get(f"/api/v1/events/{event_id}/attendance")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def until(
    center: Center, event_id: int, check: Callable[[dict[str, Any]], bool], what: str
) -> dict[str, Any]:
    """Ask the Center's API until its attendance shows ``what`` (it travels through the tree)."""
    deadline = time.monotonic() + 40
    found: dict[str, Any] = {}
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(attendance, center, event_id)
        if check(found):
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"the attendance never showed {what}: {found}")


def stays(found: dict[str, Any], name: str) -> list[dict[str, Any]]:
    person = next((p for p in found["people"] if p["name"] == name), None)
    return list(person["stays"]) if person is not None else []


def where(found: dict[str, Any], name: str) -> list[tuple[str, str, str | None]]:
    return [(s["server"], s["zone"], s["ended_by"]) for s in stays(found, name)]


def unix(value: str | None) -> float:
    assert value is not None
    return datetime.fromisoformat(value).timestamp()


async def joined(username: str, server: str, center: Center, event_id: int) -> Watcher:
    watcher = Watcher(ticket_for(center, username, event_id), server)
    await watcher.participant.join()
    return watcher


async def test_joins_leaves_and_rejoins_on_two_servers_and_a_crash_are_counted(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        await system.wait_state(api, event_id, "ready")

    # quinn on the DMZ server, pia on the main one.
    t0 = time.time()
    quinn = await joined("quinn", "child-dmz", center, event_id)
    pia = await joined("pia", "main", center, event_id)
    t1 = time.time()
    await pia.wait_for(lambda: "quinn" in pia.participant.roster, "quinn joined")

    # quinn leaves, and comes back on the main server.
    t2 = time.time()
    await quinn.participant.leave()
    quinn = await joined("quinn", "main", center, event_id)
    t3 = time.time()
    await until(
        center,
        event_id,
        lambda f: where(f, "quinn") == [("child-dmz", "dmz", "left"), ("main", "internal", None)],
        "quinn's move to the main server",
    )

    # pia leaves, and comes back on the DMZ server, which then dies under her.
    t4 = time.time()
    await pia.participant.leave()
    pia = await joined("pia", "child-dmz", center, event_id)
    t5 = time.time()
    await until(
        center,
        event_id,
        lambda f: where(f, "pia") == [("main", "internal", "left"), ("child-dmz", "dmz", None)],
        "pia's move to the DMZ server",
    )
    system.kill("child-dmz")
    killed = time.time()
    lost = await until(
        center,
        event_id,
        lambda f: where(f, "pia")[1:2] == [("child-dmz", "dmz", "server-loss")],
        "pia's stay closed with the lost server",
    )
    assert lost["complete"] is False

    for watcher in (pia, quinn):
        await watcher.participant.leave()
    t6 = time.time()
    final = await until(
        center,
        event_id,
        lambda f: all(s["left_at"] for p in f["people"] for s in p["stays"]),
        "everyone gone",
    )

    assert [p["name"] for p in final["people"]] == ["pia", "quinn"]
    assert all(not p["guest"] for p in final["people"])
    assert where(final, "quinn") == [("child-dmz", "dmz", "left"), ("main", "internal", "left")]
    pia_where = where(final, "pia")
    assert pia_where[:2] == [("main", "internal", "left"), ("child-dmz", "dmz", "server-loss")]
    # pia's application may have found the main server again on its own: that is a stay too.
    assert all(w == ("main", "internal", "left") for w in pia_where[2:])

    # Each stay lies inside the moments the test made it begin and end.
    q1, q2 = stays(final, "quinn")
    assert t0 <= unix(q1["joined_at"]) <= t1 and t2 <= unix(q1["left_at"]) <= t3
    assert t2 <= unix(q2["joined_at"]) <= t3 and unix(q2["left_at"]) <= t6
    p1, p2 = stays(final, "pia")[:2]
    assert t0 <= unix(p1["joined_at"]) <= t1 and t4 <= unix(p1["left_at"]) <= t5
    assert t4 <= unix(p2["joined_at"]) <= t5
    # The lost stay ends at the DMZ server's last report: after she came, before it died.
    assert unix(p2["joined_at"]) <= unix(p2["left_at"]) <= killed
    for person in final["people"]:
        for stay in person["stays"]:
            length = (unix(stay["left_at"]) - unix(stay["joined_at"])) / 60
            assert stay["minutes"] == pytest.approx(length, abs=0.01)
        # One after the other, never two at once: the total is the sum.
        total = sum(s["minutes"] for s in person["stays"])
        assert person["total_minutes"] == pytest.approx(total, abs=0.02)
    assert {s["server"]: s["zone"] for s in final["servers"]} == {
        "main": "internal",
        "child-dmz": "dmz",
    }

    # The CSV says the same, row for stay; the event page shows it and offers it.
    with center.client("olga") as api:
        exported = api.get(f"/api/v1/events/{event_id}/attendance.csv")
        page = api.get(f"/events/{event_id}")
        download = api.get(f"/events/{event_id}/attendance.csv")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert download.text == exported.text
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    expected = [
        (p["name"], s["server"], s["zone"], s["ended_by"], s["minutes"], p["total_minutes"])
        for p in final["people"]
        for s in p["stays"]
    ]
    assert [
        (
            r["name"],
            r["server"],
            r["zone"],
            r["ended_by"],
            float(r["minutes"]),
            float(r["total_minutes"]),
        )
        for r in rows
    ] == [
        (n, sv, z, e, pytest.approx(m, abs=0.01), pytest.approx(t, abs=0.01))
        for n, sv, z, e, m, t in expected
    ]
    assert [unix(r["joined_at"]) for r in rows] == [unix(s["joined_at"]) for _, s in _flat(final)]
    assert page.status_code == 200
    assert "Attendance" in page.text and f"/events/{event_id}/attendance.csv" in page.text
    assert "server lost" in page.text and "Incomplete" in page.text

    # pia took part, but does not manage the event: she is refused its attendance.
    with center.client("pia") as api:
        for url in (
            f"/api/v1/events/{event_id}/attendance",
            f"/api/v1/events/{event_id}/attendance.csv",
            f"/events/{event_id}/attendance.csv",
        ):
            refused = api.get(url)
            assert refused.status_code == 403, (url, refused.text)
            assert "quinn" not in refused.text


def _flat(found: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(p, s) for p in found["people"] for s in p["stays"]]
