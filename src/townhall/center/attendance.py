"""Who attended an event, from which server and zone, when, and for how long (issue 13).

Each live server reports its own participants' stays (joins, leaves, rejoins)
on its control link; the Controller hands the new and changed ones to
``record`` and, when a server vanishes or the event ends, asks ``close`` to
end what is still open at the last time known, marking each such stay with
why ("server-loss": the count is incomplete there; "event-end"). Stays are
kept by (server, credential, join time), so a report repeated or replayed by
a restarted Controller changes nothing. ``report`` puts it together for the
organizer: per person (an account, or a guest), every stay and the total
minutes, the overlapping stays of a quick move between servers counted
once; ``csv_text`` writes the same as one row per stay. docs/api.md,
"Attendance".
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from townhall.center.spreadsheet import cell
from townhall.center.tables import Attendance, AttendanceServer, Event, TicketCredential
from townhall.store.conventions import utc

__all__ = [
    "CAUSES",
    "AttendanceReport",
    "Person",
    "ReportedVisit",
    "ServerNote",
    "Stay",
    "close",
    "csv_text",
    "record",
    "report",
]

CAUSES = frozenset({"server-loss", "event-end"})


class ReportedVisit(Protocol):
    """A stay as the Controller hands it on (``controller.plan.ReportedVisit``): naive UTC."""

    @property
    def credential_id(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def joined_at(self) -> datetime: ...
    @property
    def left_at(self) -> datetime | None: ...


def record(
    session: Session,
    event_id: int,
    server: str,
    zone: str,
    at: datetime | None,
    visits: Sequence[ReportedVisit],
    missed: int,
) -> int:
    """Keep what ``server`` reported of the event's attendance, and commit.

    A stay of a credential the event never issued is skipped, as is anything
    for an event since deleted. Returns how many stays are new.
    """
    if session.get(Event, event_id) is None:
        return 0
    note = session.get(AttendanceServer, (event_id, server))
    if note is None:
        note = AttendanceServer(event_id=event_id, server=server, zone=zone, missed=0)
        session.add(note)
    note.zone, note.missed = zone, max(0, missed)
    if at is not None and (note.last_seen_at is None or at > note.last_seen_at):
        note.last_seen_at = at
    # By key: a report repeats what was sent before, and a full one comes every minute
    # with every stay of the server (thousands at a town hall): a few statements for
    # all of them, not a lookup each.
    reported = {(visit.credential_id, visit.joined_at): visit for visit in visits}
    ids = sorted({credential_id for credential_id, _ in reported})
    kept: dict[tuple[str, datetime], Any] = {}
    issued: dict[str, Any] = {}
    for chunk in _chunks(ids):
        for stay in session.execute(
            select(
                Attendance.id,
                Attendance.credential_id,
                Attendance.joined_at,
                Attendance.name,
                Attendance.username,
                Attendance.left_at,
                Attendance.ended_by,
            ).where(
                Attendance.event_id == event_id,
                Attendance.server == server,
                Attendance.credential_id.in_(chunk),
            )
        ):
            kept[(stay.credential_id, stay.joined_at)] = stay
        for credential in session.execute(
            select(TicketCredential.id, TicketCredential.username, TicketCredential.user_id).where(
                TicketCredential.id.in_(chunk), TicketCredential.event_id == event_id
            )
        ):
            issued[credential.id] = credential
    added: list[dict[str, Any]] = []
    changed: list[dict[str, Any]] = []
    for key, visit in reported.items():
        ended_by = "left" if visit.left_at is not None else None
        row = kept.get(key)
        if row is None:
            found = issued.get(visit.credential_id)
            if found is None:
                continue  # not a credential of this event
            added.append(
                {
                    "event_id": event_id,
                    "server": server,
                    "zone": zone,
                    "credential_id": found.id,
                    "username": found.username,
                    "guest": found.user_id is None,
                    "joined_at": visit.joined_at,
                    "name": (visit.name or found.username)[:200],
                    "left_at": visit.left_at,
                    "ended_by": ended_by,
                }
            )
            continue
        name = (visit.name or row.username)[:200]
        if (name, visit.left_at, ended_by) != (row.name, row.left_at, row.ended_by):
            changed.append(
                {"id": row.id, "name": name, "left_at": visit.left_at, "ended_by": ended_by}
            )
    if added:
        session.execute(insert(Attendance), added)
    if changed:
        session.execute(update(Attendance), changed)  # by primary key, one statement
    session.commit()
    return len(added)


_CHUNK = 500  # ids in one IN list, well within SQLite's and PostgreSQL's bounds


def _chunks(ids: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(ids), _CHUNK):
        yield ids[start : start + _CHUNK]


def close(
    session: Session, event_id: int, server: str | None, at: datetime | None, cause: str
) -> int:
    """End the event's stays still open on ``server`` (None: anywhere), and commit.

    At ``at``, or else when the Center last heard of their server (or, never
    heard, when they began). Returns how many were closed.
    """
    if cause not in CAUSES:
        raise ValueError(f"not a cause: {cause!r}")
    query = select(Attendance).where(Attendance.event_id == event_id, Attendance.left_at.is_(None))
    if server is not None:
        query = query.where(Attendance.server == server)
    rows = list(session.scalars(query))
    for row in rows:
        end = at
        if end is None:
            note = session.get(AttendanceServer, (event_id, row.server))
            end = note.last_seen_at if note is not None else None
        row.left_at = max(end or row.joined_at, row.joined_at)
        row.ended_by = cause
    session.commit()
    return len(rows)


# -- the organizer's report ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stay:
    server: str
    zone: str
    joined_at: datetime  # aware UTC
    left_at: datetime | None  # None: still there
    ended_by: str | None  # "left" | "event-end" | "server-loss"; None while there
    minutes: float


@dataclass(frozen=True, slots=True)
class Person:
    name: str
    username: str  # the account's, or the guest's as the ticket named it
    guest: bool
    stays: tuple[Stay, ...]
    total_minutes: float  # time present on any server, overlaps counted once


@dataclass(frozen=True, slots=True)
class ServerNote:
    server: str
    zone: str
    last_seen_at: datetime | None
    missed: int  # joins the server could not report


@dataclass(frozen=True, slots=True)
class AttendanceReport:
    people: tuple[Person, ...]
    servers: tuple[ServerNote, ...]

    @property
    def complete(self) -> bool:
        """No stay lost with its server, no join a server could not report."""
        lost = any(s.ended_by == "server-loss" for p in self.people for s in p.stays)
        return not lost and not any(note.missed for note in self.servers)


def report(session: Session, event: Event, now: datetime) -> AttendanceReport:
    """The event's attendance at ``now`` (naive UTC): people by name, stays by time."""
    rows = session.scalars(
        select(Attendance)
        .where(Attendance.event_id == event.id)
        .order_by(Attendance.joined_at, Attendance.id)
    )
    by_person: dict[tuple[bool, str], list[Attendance]] = {}
    for row in rows:
        by_person.setdefault((row.guest, row.username), []).append(row)
    people = [
        Person(
            name=stays[-1].name,
            username=username,
            guest=guest,
            stays=tuple(
                Stay(
                    server=row.server,
                    zone=row.zone,
                    joined_at=utc(row.joined_at),
                    left_at=utc(row.left_at) if row.left_at is not None else None,
                    ended_by=row.ended_by,
                    minutes=_minutes((row.left_at or now) - row.joined_at),
                )
                for row in stays
            ),
            total_minutes=_minutes(_union(stays, now)),
        )
        for (guest, username), stays in by_person.items()
    ]
    people.sort(key=lambda p: (p.name.casefold(), p.username))
    notes = session.scalars(
        select(AttendanceServer)
        .where(AttendanceServer.event_id == event.id)
        .order_by(AttendanceServer.server)
    )
    servers = tuple(
        ServerNote(n.server, n.zone, utc(n.last_seen_at) if n.last_seen_at else None, n.missed)
        for n in notes
    )
    return AttendanceReport(tuple(people), servers)


def _union(stays: Sequence[Attendance], now: datetime) -> timedelta:
    total = timedelta(0)
    end: datetime | None = None
    for row in sorted(stays, key=lambda r: r.joined_at):
        start, stop = row.joined_at, max(row.left_at or now, row.joined_at)
        if end is None or start > end:
            total += stop - start
            end = stop
        elif stop > end:
            total += stop - end
            end = stop
    return total


def _minutes(span: timedelta) -> float:
    return round(max(span.total_seconds(), 0.0) / 60, 2)


CSV_COLUMNS = (
    "name",
    "username",
    "guest",
    "server",
    "zone",
    "joined_at",
    "left_at",
    "ended_by",
    "minutes",
    "total_minutes",
)


def csv_text(attendance: AttendanceReport) -> str:
    """One row per stay (``CSV_COLUMNS``), times in ISO 8601 UTC; the person's total on each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for person in attendance.people:
        for stay in person.stays:
            writer.writerow(
                (
                    cell(person.name),
                    cell(person.username),
                    "yes" if person.guest else "no",
                    stay.server,
                    stay.zone,
                    stay.joined_at.isoformat(),
                    stay.left_at.isoformat() if stay.left_at is not None else "",
                    stay.ended_by or "",
                    f"{stay.minutes:.2f}",
                    f"{person.total_minutes:.2f}",
                )
            )
    return out.getvalue()
