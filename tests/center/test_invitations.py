"""Invitations as invitees receive them: a real SMTP server behind a running Center.

aiosmtpd plays the organisation's mail server; every message is parsed as a
mail client would, and its iCalendar part as a calendar would.
"""

from __future__ import annotations

import email
import email.policy
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import icalendar
import pytest
from aiosmtpd.controller import Controller

from tests.support import Center, free_port, make_settings, start_center


class Inbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(message)  # type: ignore[arg-type]
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(self.messages) >= count, f"{len(self.messages)} of {count} messages arrived"
        return list(self.messages)


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def mail_settings(tmp_path: Path, database_url: str, port: int, **mail: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path / "data", database_url,
        base_url="https://townhall.example.org",
        mail={"smtp_url": f"smtp://127.0.0.1:{port}", "poll_seconds": 0.1,
              "retry_base_seconds": 0.2, **mail},
    )


def calendar_of(message: EmailMessage) -> icalendar.Calendar:
    parts = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    return icalendar.Calendar.from_ical(parts[0].get_payload(decode=True))


def vevent(calendar: icalendar.Calendar) -> icalendar.Event:
    return next(c for c in calendar.walk() if c.name == "VEVENT")


EVENT = {
    "title": "Board meeting",
    "description": "Annual figures",
    "starts_at": "2031-05-04T16:00:00+02:00",
    "duration_minutes": 90,
    "kind": "meeting",
    "visibility": "private",
    "invitees": ["guest@example.com", "mike@example.org"],
}


def test_invitees_receive_request_update_and_cancel(
    tmp_path: Path, database_url: str, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    server, center = start_center(mail_settings(tmp_path, database_url, port))
    with server as url:
        center.url = url
        center.add_user("olga", role="organizer")
        center.add_user("mike")
        with center.client("olga") as olga:
            event = olga.post("/api/v1/events", json=EVENT).json()
            invites = inbox.wait_for(2)
            assert {str(m["To"]) for m in invites} == {"guest@example.com", "mike@example.org"}
            for message in invites:
                kinds = {p.get_content_type() for p in message.walk()}
                assert {"text/plain", "text/html", "text/calendar"} <= kinds
                assert "Board meeting" in str(message["Subject"])
                text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
                assert "https://townhall.example.org/j/" in text
                calendar = calendar_of(message)
                assert str(calendar["METHOD"]) == "REQUEST"
                item = vevent(calendar)
                assert int(item["SEQUENCE"]) == 0
                start = item.decoded("DTSTART")
                assert start.utcoffset().total_seconds() == 0
                assert start.isoformat() == "2031-05-04T14:00:00+00:00"
                assert item.decoded("DTEND").isoformat() == "2031-05-04T15:30:00+00:00"
                listed = item.get("ATTENDEE")
                listed = listed if isinstance(listed, list) else [listed]
                attendees = {str(a).lower() for a in listed}
                assert str(message["To"]).lower() in {a.removeprefix("mailto:") for a in attendees}
                assert "olga@example.org" in str(item["ORGANIZER"]).lower()
            uid = str(vevent(calendar_of(invites[0]))["UID"])

            olga.patch(f"/api/v1/events/{event['id']}", json={"starts_at": "2031-05-05T16:00:00+02:00"})
            updates = inbox.wait_for(4)[2:]
            for message in updates:
                item = vevent(calendar_of(message))
                assert str(calendar_of(message)["METHOD"]) == "REQUEST"
                assert str(item["UID"]) == uid
                assert int(item["SEQUENCE"]) == 1
                assert item.decoded("DTSTART").isoformat() == "2031-05-05T14:00:00+00:00"

            olga.delete(f"/api/v1/events/{event['id']}")
            cancels = inbox.wait_for(6)[4:]
            for message in cancels:
                calendar = calendar_of(message)
                assert str(calendar["METHOD"]) == "CANCEL"
                assert str(vevent(calendar)["UID"]) == uid
                assert int(vevent(calendar)["SEQUENCE"]) == 2
                assert str(vevent(calendar)["STATUS"]) == "CANCELLED"
            # The mail server has the sixth message a moment before the sender records it as
            # sent (after the server's answer): seen "pending" once in CI.
            deadline = time.monotonic() + 30
            while True:
                deliveries = olga.get(f"/api/v1/events/{event['id']}/mail").json()
                if "pending" not in {d["status"] for d in deliveries} or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert [d["status"] for d in deliveries] == ["sent"] * 6


def test_failed_sends_are_shown_to_the_organizer_and_can_be_retried(
    tmp_path: Path, database_url: str
) -> None:
    closed_port = free_port()
    settings = mail_settings(tmp_path, database_url, closed_port, max_attempts=2)
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("olga", role="organizer")
        with center.client("olga") as olga:
            event = olga.post("/api/v1/events", json={**EVENT, "invitees": ["guest@example.com"]}).json()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                deliveries = olga.get(f"/api/v1/events/{event['id']}/mail").json()
                if deliveries and deliveries[0]["status"] == "failed":
                    break
                time.sleep(0.1)
            assert deliveries[0]["status"] == "failed"
            assert deliveries[0]["attempts"] == 2
            assert deliveries[0]["last_error"]
            retried = olga.post(f"/api/v1/events/{event['id']}/mail/{deliveries[0]['id']}/retry")
            assert retried.status_code == 204
            status = olga.get(f"/api/v1/events/{event['id']}/mail").json()[0]["status"]
            assert status in ("pending", "failed")


def test_a_restart_during_retries_loses_no_invitation(tmp_path: Path, database_url: str) -> None:
    port = free_port()
    settings = mail_settings(tmp_path, database_url, port, retry_base_seconds=0.2, max_attempts=50)
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("olga", role="organizer")
        with center.client("olga") as olga:
            invitees = [f"guest{n}@example.com" for n in range(5)]
            event = olga.post("/api/v1/events", json={**EVENT, "invitees": invitees}).json()
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                attempts = [d["attempts"] for d in olga.get(f"/api/v1/events/{event['id']}/mail").json()]
                if min(attempts) >= 1:
                    break
                time.sleep(0.1)
            assert min(attempts) >= 1
    # The Center is stopped; the mail server comes back; a new Center process takes over.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        server, center = start_center(settings)
        with server as url:
            center.url = url
            received = inbox.wait_for(5)
            time.sleep(1)  # anything sent twice would arrive now
            with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {center.token_for('olga')}"}) as olga:
                deliveries = olga.get(f"/api/v1/events/{event['id']}/mail").json()
        assert sorted(str(m["To"]) for m in inbox.messages) == sorted(invitees)
        assert len(received) == 5
        assert {d["status"] for d in deliveries} == {"sent"}
    finally:
        controller.stop()


def test_without_smtp_the_outbox_keeps_the_messages(center: Center) -> None:
    with center.client("olga") as olga:
        olga.post("/api/v1/events", json={**EVENT, "invitees": ["guest@example.com"]})
    outbox = center.settings.outbox_dir
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not list(outbox.glob("*.eml")):
        time.sleep(0.05)
    files = list(outbox.glob("*.eml"))
    assert len(files) == 1
    message = email.message_from_bytes(files[0].read_bytes(), policy=email.policy.default)
    assert str(message["To"]) == "guest@example.com"
