"""iCalendar objects for events: invitations, updates, cancellations and downloads.

``event_ics`` turns an ``Event`` row into one VCALENDAR with one VEVENT, in the
iTIP shape (RFC 5546) that Outlook, Thunderbird and Google Calendar accept:
``REQUEST`` for invitations and updates, ``CANCEL`` to withdraw them, and
``PUBLISH`` for the event page's "add to calendar" download. Times are UTC
(``Z`` form), so no VTIMEZONE is needed. This module builds bytes only: it
knows nothing of mail or the database, and bumping ``Event.sequence`` on each
change is the caller's job (``events``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Literal

import icalendar

from townhall.center.tables import Event
from townhall.store.conventions import utc

Method = Literal["REQUEST", "CANCEL", "PUBLISH"]
PRODID = "-//Townhall//Townhall 0.1//EN"


def event_uid(event: Event) -> str:
    """The VEVENT UID: stable for the event's whole life, so updates replace it."""
    return f"{event.uid}@townhall"


def _cn(name: str) -> str:
    # RFC 5545 §3.2: a parameter value cannot hold DQUOTE or control characters;
    # RFC 6868's caret escapes are not understood by Outlook, so drop them instead.
    cleaned = "".join(" " if ord(c) < 32 or c == "\x7f" else c for c in name)
    return " ".join(cleaned.replace('"', "'").split())


def _address(email: str, name: str, **params: str) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{email}")
    if _cn(name):
        address.params["CN"] = _cn(name)
    for key, value in params.items():
        address.params[key.upper()] = value
    return address


def event_ics(
    event: Event,
    *,
    method: Method,
    organizer_email: str,
    organizer_name: str,
    attendees: Sequence[tuple[str, str]],
    url: str,
) -> bytes:
    """One VCALENDAR for ``event`` as ``method``; ``attendees`` are (email, name) pairs.

    ``url`` is the link to join (for an invitation, the recipient's personal
    one): it goes in URL, LOCATION and DESCRIPTION. ``PUBLISH`` carries no
    ATTENDEE (RFC 5546 §3.2.1); ``REQUEST`` and ``CANCEL`` need an organizer.
    """
    if method not in ("REQUEST", "CANCEL", "PUBLISH"):
        raise ValueError(f"unknown iTIP method {method!r}")
    if method != "PUBLISH" and not organizer_email:
        # RFC 5546 §3.2.2, §3.2.5: ORGANIZER is required in REQUEST and CANCEL.
        raise ValueError(f"METHOD:{method} needs an organizer address")

    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", method)

    now = datetime.now(UTC).replace(microsecond=0)
    start = utc(event.starts_at)
    item = icalendar.Event()
    item.add("uid", event_uid(event))
    item.add("sequence", event.sequence)
    item.add("dtstamp", now)
    item.add("dtstart", start)
    item.add("dtend", start + timedelta(minutes=event.duration_minutes))
    # Unflushed rows have no defaults yet: stamp them "now".
    item.add("created", utc(event.created_at).replace(microsecond=0) if event.created_at else now)
    item.add(
        "last-modified", utc(event.updated_at).replace(microsecond=0) if event.updated_at else now
    )
    item.add("summary", event.title)
    description = event.description.strip()
    item.add("description", f"{description}\n\nJoin: {url}" if description else f"Join: {url}")
    item.add("location", url)
    item.add("url", url)
    item.add("transp", "OPAQUE")
    # RFC 5546 §3.2.5: STATUS:CANCELLED makes the recipient's calendar drop it.
    item.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    if organizer_email:
        item.add("organizer", _address(organizer_email, organizer_name))
    if method != "PUBLISH":
        for email, name in attendees:
            item.add(
                "attendee",
                _address(
                    email,
                    name,
                    cutype="INDIVIDUAL",
                    role="REQ-PARTICIPANT",
                    partstat="NEEDS-ACTION",
                    rsvp="TRUE",
                ),
            )
    calendar.add_component(item)
    data: bytes = calendar.to_ical()
    return data
