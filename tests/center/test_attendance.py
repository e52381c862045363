"""The Center's attendance (issue 13) from reported stays, against a real Center.

Stays as the Controller hands them on: a report repeated changes nothing, a
credential the event never issued counts no one, a quick move between
servers is not counted twice in the total, what a lost server held is closed
where it was last heard of and marks the report incomplete, an anonymous
guest is a guest, and a name that looks like a formula stays text in the CSV.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import insert

from tests.center.test_access_doors import anonymous_ticket, center_settings  # noqa: F401
from tests.center.test_join_tickets import API, default_tree, open_ticket, schedule, sealed_id
from tests.support import Center
from townhall.center import attendance
from townhall.center.tables import Event, TicketCredential

T0 = datetime(2026, 12, 1, 10, 0)


@dataclass(frozen=True)
class Seen:
    credential_id: str
    name: str
    joined_at: datetime
    left_at: datetime | None = None


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def credential(center: Center, event_id: int, username: str) -> str:
    with center.client(username) as client:
        return sealed_id(
            center, open_ticket(center, client.post(f"{API}/events/{event_id}/ticket"))
        )


def record(center: Center, event_id: int, server: str, zone: str, *seen: Seen, at: datetime) -> int:
    with center.sessions() as session:  # type: ignore[operator]
        return attendance.record(session, event_id, server, zone, at, seen, 0)


def report(center: Center, event_id: int, now: datetime) -> attendance.AttendanceReport:
    with center.sessions() as session:  # type: ignore[operator]
        event = session.get(Event, event_id)
        assert event is not None
        return attendance.report(session, event, now)


def test_stays_are_kept_once_merged_per_person_and_closed_where_a_lost_server_was_heard(
    center: Center,
) -> None:
    default_tree(center)
    event_id = int(schedule(center, visibility="public")["id"])
    olga = credential(center, event_id, "olga")
    other = int(schedule(center)["id"])
    stranger = credential(center, other, "olga")
    guest = sealed_id(
        center, open_ticket(center, anonymous_ticket(center, event_id, "198.51.100.7"))
    )

    stay = Seen(olga, "=HYPERLINK(1)", T0, T0 + minutes(10))
    assert record(center, event_id, "edge", "dmz", stay, at=T0 + minutes(11)) == 1
    assert record(center, event_id, "edge", "dmz", stay, at=T0 + minutes(11)) == 0  # again
    # Moving to the main server, she is on both for a minute: counted once.
    main = Seen(olga, "=HYPERLINK(1)", T0 + minutes(9), T0 + minutes(20))
    record(center, event_id, "main", "internal", main, at=T0 + minutes(21))
    # A credential of another event counts no one here.
    assert record(center, event_id, "main", "internal", Seen(stranger, "x", T0), at=T0) == 0
    # A guest on the edge, which vanishes while she is there: last heard at 30.
    record(
        center, event_id, "edge", "dmz", Seen(guest, "guest", T0 + minutes(25)), at=T0 + minutes(30)
    )
    with center.sessions() as session:  # type: ignore[operator]
        assert attendance.close(session, event_id, "edge", None, "server-loss") == 1

    found = report(center, event_id, T0 + minutes(60))
    assert not found.complete
    (anonymous,) = [p for p in found.people if p.guest]
    (account,) = [p for p in found.people if not p.guest]
    assert [(s.server, s.minutes, s.ended_by) for s in account.stays] == [
        ("edge", 10.0, "left"),
        ("main", 11.0, "left"),
    ]
    assert account.total_minutes == 20.0 and account.username == "olga"
    assert [(s.server, s.minutes, s.ended_by) for s in anonymous.stays] == [
        ("edge", 5.0, "server-loss")
    ]

    rows = list(csv.DictReader(io.StringIO(attendance.csv_text(found))))
    assert [
        (r["name"], r["server"], r["minutes"], r["total_minutes"])
        for r in rows
        if r["guest"] == "no"
    ] == [
        ("'=HYPERLINK(1)", "edge", "10.00", "20.00"),
        ("'=HYPERLINK(1)", "main", "11.00", "20.00"),
    ]


def test_a_full_report_of_a_town_hall_is_kept_whole_and_repeated_changes_only_what_moved(
    center: Center,
) -> None:
    """Every minute a server reports all its stays again: 1,201 here, past one IN list."""
    default_tree(center)
    event_id = int(schedule(center, visibility="public")["id"])
    ids = [f"storm-{n:06d}-credential" for n in range(1201)]
    with center.sessions() as session:  # type: ignore[operator]
        session.execute(
            insert(TicketCredential),
            [
                {
                    "id": credential_id,
                    "event_id": event_id,
                    "username": f"user{n}",
                    "display_name": f"User {n}",
                    "role": "participant",
                    "secret_sha256": "0" * 64,
                    "created_at": T0,
                }
                for n, credential_id in enumerate(ids)
            ],
        )
        session.commit()
    stays = [Seen(credential_id, "", T0 + minutes(1)) for credential_id in ids]
    stranger = Seen("not-issued-credential", "x", T0)
    assert record(center, event_id, "main", "internal", *stays, stranger, at=T0) == 1201
    # The next full report: the first hundred left, the rest unchanged.
    later = [Seen(s.credential_id, s.name, s.joined_at, T0 + minutes(5)) for s in stays[:100]]
    assert record(center, event_id, "main", "internal", *later, *stays[100:], at=T0) == 0

    found = report(center, event_id, T0 + minutes(11))
    assert len(found.people) == 1201
    minutes_by_name = {person.username: person.total_minutes for person in found.people}
    assert minutes_by_name["user0"] == 4.0 and minutes_by_name["user99"] == 4.0
    assert minutes_by_name["user100"] == 10.0 and minutes_by_name["user1200"] == 10.0
    # no name reported: the credential's
    assert {person.name for person in found.people} == {f"user{n}" for n in range(1201)}
