"""Routes of an event's attendance: JSON and CSV in the REST API, the CSV download of the page.

The event's managers (its organizer and moderators, as for removals) read
who attended: ``GET /api/v1/events/{id}/attendance`` as JSON,
``…/attendance.csv`` as CSV, and the event page's "Download CSV" link
(``/events/{id}/attendance.csv``, signed in with the portal's session).
Anyone else gets 403 ``not_event_manager``. The rules and the numbers are
``center.attendance``'s; this module only maps HTTP to them. docs/api.md,
"Attendance".
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel

from townhall.center import attendance, events
from townhall.center.api import EventId, Me
from townhall.center.pages.common import SignedInUser
from townhall.center.spreadsheet import csv_download
from townhall.center.tables import Event
from townhall.store.conventions import now_utc
from townhall.web.deps import DB
from townhall.web.errors import ERRORS

router = APIRouter()


class StayOut(BaseModel):
    server: str
    zone: str
    joined_at: datetime
    left_at: datetime | None
    ended_by: str | None
    minutes: float


class PersonOut(BaseModel):
    name: str
    username: str
    guest: bool
    total_minutes: float
    stays: list[StayOut]


class ServerOut(BaseModel):
    server: str
    zone: str
    last_seen_at: datetime | None
    missed: int


class AttendanceOut(BaseModel):
    event_id: int
    complete: bool
    people: list[PersonOut]
    servers: list[ServerOut]


@router.get(
    "/api/v1/events/{event_id}/attendance",
    response_model=AttendanceOut,
    responses=ERRORS,
    tags=["api"],
)
def get_attendance(session: DB, user: Me, event_id: EventId) -> AttendanceOut:
    """Who attended, from which server and zone, each stay, and total minutes."""
    event = events.get_managed(session, event_id, user)
    found = attendance.report(session, event, now_utc())
    return AttendanceOut(
        event_id=event.id,
        complete=found.complete,
        people=[
            PersonOut(
                name=p.name,
                username=p.username,
                guest=p.guest,
                total_minutes=p.total_minutes,
                stays=[
                    StayOut(
                        server=s.server,
                        zone=s.zone,
                        joined_at=s.joined_at,
                        left_at=s.left_at,
                        ended_by=s.ended_by,
                        minutes=s.minutes,
                    )
                    for s in p.stays
                ],
            )
            for p in found.people
        ],
        servers=[
            ServerOut(server=n.server, zone=n.zone, last_seen_at=n.last_seen_at, missed=n.missed)
            for n in found.servers
        ],
    )


@router.get(
    "/api/v1/events/{event_id}/attendance.csv",
    responses=ERRORS | {200: {"content": {"text/csv": {}}}},
    tags=["api"],
)
def get_attendance_csv(session: DB, user: Me, event_id: EventId) -> Response:
    """The attendance as CSV: one row per stay."""
    return _csv(session, events.get_managed(session, event_id, user))


@router.get("/events/{event_id}/attendance.csv", include_in_schema=False)
def attendance_csv_page(session: DB, user: SignedInUser, event_id: EventId) -> Response:
    """The event page's download (signed in with the portal's session)."""
    return _csv(session, events.get_managed(session, event_id, user))


def _csv(session: DB, event: Event) -> Response:
    text = attendance.csv_text(attendance.report(session, event, now_utc()))
    return csv_download(text, f"event-{event.id}-attendance.csv")
