"""iCalendar objects and invitation mails, read back as calendars and mail clients read them.

Every .ics is parsed with icalendar and checked against RFC 5546's rules for
its method; every mail is serialised with the SMTP policy and parsed again.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import EmailMessage

import icalendar
import pytest

from townhall.center.calendar import event_ics
from townhall.center.invitations import invitation_message
from townhall.center.tables import Event


def make_event(**fields: object) -> Event:
    values: dict[str, object] = {
        "uid": "0f3c5a9e2b7d4c1e8a6f",
        "title": "Board meeting",
        "description": "Annual figures",
        "starts_at": datetime(2031, 5, 4, 14, 0),
        "duration_minutes": 90,
        "ends_at": datetime(2031, 5, 4, 15, 30),
        "timezone": "Europe/Berlin",
        "kind": "meeting",
        "visibility": "private",
        "status": "scheduled",
        "sequence": 0,
        "created_at": datetime(2031, 1, 2, 3, 4, 5),
        "updated_at": datetime(2031, 1, 2, 3, 4, 5),
    }
    values.update(fields)
    return Event(**values)


def ics(event: Event, method: str = "REQUEST", **overrides: object) -> icalendar.Calendar:
    arguments: dict[str, object] = {
        "method": method,
        "organizer_email": "olga@example.org",
        "organizer_name": "Olga Organizer",
        "attendees": [("guest@example.com", "Guest Person"), ("mike@example.org", "")],
        "url": "https://townhall.example.org/j/abc",
    }
    arguments.update(overrides)
    return icalendar.Calendar.from_ical(event_ics(event, **arguments))  # type: ignore[arg-type]


def vevent(calendar: icalendar.Calendar) -> icalendar.Event:
    (item,) = calendar.walk("VEVENT")
    return item


def mailto(address: object) -> str:
    return str(address).lower().removeprefix("mailto:")


def message(event: Event, purpose: str = "invite", **overrides: object) -> EmailMessage:
    arguments: dict[str, object] = {
        "event": event,
        "recipient_email": "guest@example.com",
        "recipient_name": "Guest Person",
        "purpose": purpose,
        "join_url": "https://townhall.example.org/j/personal?t=1&u=2",
        "event_url": "https://townhall.example.org/events/7",
        "sender": "Townhall <townhall@example.org>",
        "organizer_email": "olga@example.org",
        "organizer_name": "Olga Organizer",
        "timezone": "Europe/Berlin",
    }
    arguments.update(overrides)
    built = invitation_message(**arguments)  # type: ignore[arg-type]
    # As the recipient gets it: serialised for SMTP, parsed by a mail client.
    wire = built.as_bytes(policy=email.policy.SMTP)
    return email.message_from_bytes(wire, policy=email.policy.default)  # type: ignore[return-value]


def calendar_part(mail: EmailMessage) -> tuple[EmailMessage, icalendar.Calendar]:
    parts = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return parts[0], icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


def test_a_request_carries_the_event_in_utc_with_organizer_and_attendees() -> None:
    calendar = ics(make_event())
    assert str(calendar["METHOD"]) == "REQUEST"
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//Townhall//Townhall 0.1//EN"
    item = vevent(calendar)
    assert str(item["UID"]) == "0f3c5a9e2b7d4c1e8a6f@townhall"
    assert int(item["SEQUENCE"]) == 0
    assert item.decoded("DTSTART") == datetime(2031, 5, 4, 14, 0, tzinfo=UTC)
    assert item.decoded("DTEND") == datetime(2031, 5, 4, 15, 30, tzinfo=UTC)
    assert item.decoded("DTSTAMP").tzinfo is not None
    assert str(item["SUMMARY"]) == "Board meeting"
    assert "Annual figures" in str(item["DESCRIPTION"])
    assert "https://townhall.example.org/j/abc" in str(item["DESCRIPTION"])
    assert str(item["LOCATION"]) == "https://townhall.example.org/j/abc"
    assert str(item["URL"]) == "https://townhall.example.org/j/abc"
    assert mailto(item["ORGANIZER"]) == "olga@example.org"
    assert item["ORGANIZER"].params["CN"] == "Olga Organizer"
    attendees = {mailto(a): a.params for a in item["ATTENDEE"]}
    assert set(attendees) == {"guest@example.com", "mike@example.org"}
    guest = attendees["guest@example.com"]
    assert guest["CN"] == "Guest Person"
    assert (guest["ROLE"], guest["PARTSTAT"], guest["RSVP"]) == (
        "REQ-PARTICIPANT",
        "NEEDS-ACTION",
        "TRUE",
    )


def test_the_times_are_written_in_the_utc_z_form() -> None:
    raw = event_ics(
        make_event(),
        method="REQUEST",
        organizer_email="olga@example.org",
        organizer_name="Olga",
        attendees=[("guest@example.com", "")],
        url="https://townhall.example.org/j/abc",
    )
    assert b"\r\nDTSTART:20310504T140000Z\r\n" in raw
    assert b"\r\nDTEND:20310504T153000Z\r\n" in raw
    assert b"VTIMEZONE" not in raw


def test_an_update_keeps_the_uid_and_raises_the_sequence() -> None:
    event = make_event()
    first = vevent(ics(event))
    event.sequence += 1
    event.starts_at = datetime(2031, 5, 5, 14, 0)
    second = vevent(ics(event))
    assert str(second["UID"]) == str(first["UID"])
    assert int(second["SEQUENCE"]) > int(first["SEQUENCE"])
    assert second.decoded("DTSTART") == datetime(2031, 5, 5, 14, 0, tzinfo=UTC)


def test_a_cancel_is_cancelled_for_the_same_uid_and_names_its_attendees() -> None:
    event = make_event()
    request = vevent(ics(event))
    event.sequence += 1
    calendar = ics(event, "CANCEL", attendees=[("guest@example.com", "Guest Person")])
    assert str(calendar["METHOD"]) == "CANCEL"
    item = vevent(calendar)
    assert str(item["STATUS"]) == "CANCELLED"
    assert str(item["UID"]) == str(request["UID"])
    assert int(item["SEQUENCE"]) > int(request["SEQUENCE"])
    assert mailto(item["ORGANIZER"]) == "olga@example.org"
    assert mailto(item["ATTENDEE"]) == "guest@example.com"


def test_a_published_event_for_download_names_no_attendees() -> None:
    calendar = ics(make_event(), "PUBLISH", url="https://townhall.example.org/events/7")
    assert str(calendar["METHOD"]) == "PUBLISH"
    item = vevent(calendar)
    assert "ATTENDEE" not in item
    assert str(item["URL"]) == "https://townhall.example.org/events/7"
    assert str(item["STATUS"]) == "CONFIRMED"


def test_a_request_without_an_organizer_is_refused() -> None:
    with pytest.raises(ValueError, match="organizer"):
        ics(make_event(), organizer_email="")


def test_names_with_quotes_and_line_breaks_still_make_a_valid_calendar() -> None:
    item = vevent(
        ics(
            make_event(title='Q3: "numbers", plans; and more\nsecond line'),
            organizer_name='Olga "The Boss"\r\nInjected:1',
            attendees=[("guest@example.com", "Guest; Person, Jr.")],
        )
    )
    assert str(item["SUMMARY"]) == 'Q3: "numbers", plans; and more\nsecond line'
    assert item["ORGANIZER"].params["CN"] == "Olga 'The Boss' Injected:1"
    assert item["ATTENDEE"].params["CN"] == "Guest; Person, Jr."


def test_an_invitation_mail_is_text_html_and_an_inline_calendar_alternative() -> None:
    mail = message(make_event())
    assert mail.get_content_type() == "multipart/alternative"
    kinds = [p.get_content_type() for p in mail.iter_parts()]
    assert kinds == ["text/plain", "text/html", "text/calendar"]
    part, calendar = calendar_part(mail)
    assert part.get_param("method") == "REQUEST"
    assert str(part.get_param("charset")).lower() == "utf-8"
    assert str(calendar["METHOD"]) == "REQUEST"
    assert [mailto(a) for a in [vevent(calendar)["ATTENDEE"]]] == ["guest@example.com"]
    assert str(mail["Subject"]) == "Invitation: Board meeting (Sun 4 May 2031 16:00 CEST)"
    assert str(mail["From"]) == "Townhall <townhall@example.org>"
    assert str(mail["To"]) == "guest@example.com"
    assert "olga@example.org" in str(mail["Reply-To"])
    assert mail["Message-ID"].endswith("@example.org>")
    assert mail["Date"]


def test_the_body_shows_the_start_in_the_zone_and_in_utc_with_the_links() -> None:
    mail = message(make_event())
    text = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Hello Guest Person," in text
    assert "Sunday 4 May 2031, 16:00 CEST" in text
    assert "Sunday 4 May 2031, 14:00 UTC" in text
    assert "1 h 30 min" in text
    assert "Meeting" in text
    assert "https://townhall.example.org/j/personal?t=1&u=2" in text
    assert "https://townhall.example.org/events/7" in text
    assert "Sunday 4 May 2031, 16:00 CEST" in html
    assert 'href="https://townhall.example.org/j/personal?t=1&amp;u=2"' in html


def test_user_text_is_escaped_in_the_html_body() -> None:
    event = make_event(
        title="<script>alert('title')</script>",
        description='<img src=x onerror="alert(1)">\nsecond & line',
    )
    mail = message(event, recipient_name="<b>Guest</b>", organizer_name="<i>Olga</i>")
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "<script>" not in html
    assert "&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in html
    assert "<img" not in html and "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in html
    assert "<b>Guest</b>" not in html and "<i>Olga</i>" not in html
    assert "second &amp; line" in html
    # The plain text and the calendar carry the title as it was typed.
    assert "<script>alert('title')</script>" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert str(vevent(calendar_part(mail)[1])["SUMMARY"]) == "<script>alert('title')</script>"


def test_an_update_and_a_cancellation_say_so_in_subject_and_method() -> None:
    event = make_event(sequence=1)
    update = message(event, "update")
    assert str(update["Subject"]).startswith("Updated: Board meeting")
    assert str(calendar_part(update)[1]["METHOD"]) == "REQUEST"
    event.sequence, event.status = 2, "cancelled"
    cancel = message(event, "cancel")
    assert str(cancel["Subject"]).startswith("Cancelled: Board meeting")
    part, calendar = calendar_part(cancel)
    assert part.get_param("method") == "CANCEL"
    assert str(vevent(calendar)["STATUS"]) == "CANCELLED"
    assert int(vevent(calendar)["SEQUENCE"]) == 2
    text = cancel.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "cancelled this event" in text
    assert "/j/personal" not in text


def test_non_ascii_text_survives_the_trip_through_smtp() -> None:
    mail = message(
        make_event(title="Réunion générale — 2031", description="Ça va? 日本語"),
        recipient_name="Zoë",
    )
    assert "Réunion générale — 2031" in str(mail["Subject"])
    assert "Ça va? 日本語" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hello Zoë," in mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    item = vevent(calendar_part(mail)[1])
    assert str(item["SUMMARY"]) == "Réunion générale — 2031"
    assert item["ATTENDEE"].params["CN"] == "Zoë"


def test_an_unknown_zone_shows_the_start_in_utc() -> None:
    text = message(make_event(), timezone="Mars/Olympus").get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Sunday 4 May 2031, 14:00 UTC" in text


def test_without_an_organizer_address_the_sender_organizes() -> None:
    mail = message(make_event(), organizer_email="")
    assert mail["Reply-To"] is None
    assert mailto(vevent(calendar_part(mail)[1])["ORGANIZER"]) == "townhall@example.org"
