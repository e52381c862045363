"""What the Controller reads from the Center and reports back: due events and the tree's state.

``due_events`` picks the events whose trees should exist now; the state the
Controller records with ``record_live_state`` comes back from ``live_state``,
in ``GET /api/v1/events/{id}`` (not in the catalog) and on the event page.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.support import Center
from townhall.center.live import (
    ServerState,
    due_events,
    live_state,
    record_live_state,
)
from townhall.store.conventions import naive_utc

API = "/api/v1"
MAIN = ServerState(
    name="main",
    role="main",
    parent=None,
    zone="internal",
    address="live.example.org:9443",
    connected=True,
    upstream="none",
    participants=3,
)
EDGE = ServerState(
    name="edge",
    role="child",
    parent="main",
    zone="dmz",
    address="203.0.113.9:443",
    connected=False,
    upstream="connecting",
    participants=0,
)


def schedule(center: Center, start: datetime, minutes: int = 60, **fields: Any) -> int:
    body = {"title": "All hands", "starts_at": start.isoformat(), "duration_minutes": minutes}
    with center.client("olga") as client:
        response = client.post(f"{API}/events", json={**body, **fields})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def test_live_state_is_scheduled_until_reported_then_replaced_by_each_report(
    center: Center,
) -> None:
    event_id = schedule(center, datetime.now(UTC) + timedelta(days=1))
    with center.sessions() as session:  # type: ignore[operator]
        assert live_state(session, event_id) == ("scheduled", [])
        record_live_state(session, event_id, "preparing", [MAIN, EDGE])
    with center.sessions() as session:  # type: ignore[operator]
        assert live_state(session, event_id) == ("preparing", [MAIN, EDGE])
        record_live_state(session, event_id, "ready", [MAIN])
        assert live_state(session, event_id) == ("ready", [MAIN])
    with center.sessions() as session:  # type: ignore[operator]
        assert live_state(session, event_id) == ("ready", [MAIN])
        with pytest.raises(ValueError, match="live state"):
            record_live_state(session, event_id, "exploded", [])
        with pytest.raises(ValueError, match="role"):
            record_live_state(session, event_id, "ready", [replace(EDGE, role="boss")])
        with pytest.raises(ValueError, match="upstream"):
            record_live_state(session, event_id, "ready", [replace(EDGE, upstream="sideways")])


def test_the_api_shows_the_live_state_of_one_event_but_not_in_the_catalog(
    center: Center,
) -> None:
    event_id = schedule(center, datetime.now(UTC) + timedelta(days=1), visibility="public")
    with center.client("mike") as mike:
        assert mike.get(f"{API}/events/{event_id}").json()["live"] == {
            "state": "scheduled",
            "servers": [],
        }
        with center.sessions() as session:  # type: ignore[operator]
            record_live_state(session, event_id, "degraded", [MAIN, EDGE])
        live = mike.get(f"{API}/events/{event_id}").json()["live"]
        listed = mike.get(f"{API}/events").json()["items"]
    assert live["state"] == "degraded"
    assert live["servers"] == [asdict(MAIN), asdict(EDGE)]
    assert [item["id"] for item in listed] == [event_id]
    assert "live" not in listed[0]


def test_the_event_page_shows_the_live_section(center: Center) -> None:
    event_id = schedule(center, datetime.now(UTC) + timedelta(days=1))
    with center.client("olga") as olga:
        # A bearer token works for pages too, which keeps this test free of forms.
        page = olga.get(f"/events/{event_id}").text
        assert "<h2>Live</h2>" in page and "status-scheduled" in page
        with center.sessions() as session:  # type: ignore[operator]
            record_live_state(session, event_id, "ready", [MAIN, EDGE])
        page = olga.get(f"/events/{event_id}").text
    assert "status-ready" in page
    assert "live-servers" in page
    for cell in ("<td>edge</td>", "<td>child</td>", "<td>dmz</td>", "<td>connecting</td>"):
        assert cell in page


def test_due_events_are_those_within_lead_and_grace_by_start_with_stable_keys(
    center: Center,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    lead, grace = timedelta(minutes=15), timedelta(minutes=5)
    running = schedule(center, now - timedelta(minutes=30))  # ends in 30 min
    soon = schedule(center, now + timedelta(minutes=10))
    cancelled = schedule(center, now + timedelta(minutes=5))
    schedule(center, now + timedelta(minutes=20))  # beyond the lead
    in_grace = schedule(center, now - timedelta(minutes=62))  # ended 2 min ago
    schedule(center, now - timedelta(minutes=70))  # ended 10 min ago
    schedule(center, now - timedelta(days=3))
    with center.client("olga") as olga:
        assert olga.delete(f"{API}/events/{cancelled}").status_code == 200
    with center.sessions() as session:  # type: ignore[operator]
        found = due_events(session, now=naive_utc(now), lead=lead, grace=grace)
    assert [event.event_id for event in found] == [in_grace, running, cancelled, soon]
    assert [event.event_id for event in found if event.cancelled] == [cancelled]
    first = found[1]
    assert first.title == "All hands"
    assert first.starts_at == naive_utc(now - timedelta(minutes=30))
    assert first.ends_at == naive_utc(now + timedelta(minutes=30))
    assert first.credentials == {} and first.revoked == frozenset()
    assert all(len(event.event_keys) == 1 and len(event.event_keys[0]) == 32 for event in found)
    assert len({event.event_keys[0] for event in found}) == len(found)
    # The keys were kept: asking again, from another session, gives the same ones.
    with center.sessions() as session:  # type: ignore[operator]
        again = due_events(session, now=naive_utc(now), lead=lead, grace=grace)
    assert [event.event_keys for event in again] == [event.event_keys for event in found]
