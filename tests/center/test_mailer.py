"""The mail queue against a real SMTP server (aiosmtpd), with the clock stepped by hand.

Each test queues invitation mails as ``events`` does, runs ``MailWorker``
passes at explicit times, and reads what the server received and what the
queue table says. The database is the suite's (SQLite, or PostgreSQL in CI).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import stat
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from tests.support import free_port
from townhall.center import mailer
from townhall.center.invitations import invitation_message
from townhall.center.mailer import MailWorker, parse_smtp_url
from townhall.center.migrations import VERSIONS
from townhall.center.tables import Event, MailJob, User
from townhall.config import MailSettings
from townhall.pki import DevCA
from townhall.store import make_engine, make_session_factory, upgrade

T0 = datetime(2030, 1, 1, 9, 0)
SENDER = "Townhall <townhall@example.org>"


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: email.message.EmailMessage
    tls: bool


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it is given, or refuses it when told to."""

    received: list[Received] = field(default_factory=list)
    refuse: str = ""
    # While set, DATA waits for ``release`` (a server that hangs mid-message).
    hold: bool = False
    holding: threading.Event = field(default_factory=threading.Event)
    release: threading.Event = field(default_factory=threading.Event)

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]  # noqa: N802
        if self.hold:
            self.holding.set()
            await asyncio.to_thread(self.release.wait, 30)
            return "451 4.3.0 gave up waiting"
        if self.refuse:
            return self.refuse
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.received.append(
            Received(envelope.mail_from, list(envelope.rcpt_tos), message, session.ssl is not None)  # type: ignore[arg-type]
        )
        return "250 2.0.0 OK"


class SmtpServer:
    def __init__(self, port: int | None = None, **kwargs: object) -> None:
        self.inbox = Inbox()
        self.port = port or free_port()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.inbox.release.set()
        self.controller.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url)
    upgrade(engine, [VERSIONS])
    yield make_session_factory(engine)
    engine.dispose()


def settings(url: str = "", **fields: object) -> MailSettings:
    values: dict[str, object] = {
        "smtp_url": url,
        "sender": SENDER,
        "timeout_seconds": 5,
        "retry_base_seconds": 10,
        "max_attempts": 3,
    }
    values.update(fields)
    return MailSettings(**values)  # type: ignore[arg-type]


def queue(
    sessions: sessionmaker[Session], *recipients: str, due: datetime | None = T0
) -> list[int]:
    """Schedule an event and queue an invitation to each recipient, as ``events`` does.

    The jobs are due at ``due``, or at once by the real clock when it is None.
    """
    with sessions() as session, session.begin():
        name = uuid.uuid4().hex[:8]
        olga = User(
            username=name, email=f"{name}@example.org", display_name="Olga", role="organizer"
        )
        event = Event(
            uid=uuid.uuid4().hex,
            title="Board meeting",
            description="Annual figures",
            starts_at=datetime(2031, 5, 4, 14, 0),
            ends_at=datetime(2031, 5, 4, 15, 30),
            duration_minutes=90,
            kind="meeting",
            visibility="private",
            organizer=olga,
        )
        session.add(event)
        session.flush()
        jobs = [
            mailer.enqueue(
                session,
                event=event,
                recipient=recipient,
                purpose="invite",
                message=invitation_message(
                    event=event,
                    recipient_email=recipient,
                    recipient_name="",
                    purpose="invite",
                    join_url=f"https://townhall.example.org/j/{recipient}",
                    event_url=f"https://townhall.example.org/events/{event.id}",
                    sender=SENDER,
                    organizer_email=olga.email or "",
                    organizer_name=olga.label,
                    timezone="Europe/Berlin",
                ),
            )
            for recipient in recipients
        ]
        session.flush()
        for job in jobs:
            job.next_attempt_at = due or job.next_attempt_at
        return [job.id for job in jobs]


def jobs(sessions: sessionmaker[Session]) -> list[MailJob]:
    with sessions() as session:
        return list(session.scalars(select(MailJob).order_by(MailJob.id)))


def worker(
    sessions: sessionmaker[Session], tmp_path: Path, url: str = "", **fields: object
) -> MailWorker:
    return MailWorker(sessions, settings(url, **fields), tmp_path / "outbox")


async def test_an_invitation_arrives_by_smtp_with_text_html_and_its_calendar(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    (job_id,) = queue(sessions, "guest@example.com")
    sent = await worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}").run_once(T0)
    assert sent == 1
    (received,) = smtp.inbox.received
    assert received.mail_from == "townhall@example.org"
    assert received.rcpt_tos == ["guest@example.com"]
    message = received.message
    assert str(message["To"]) == "guest@example.com"
    assert str(message["Subject"]).startswith("Invitation: Board meeting")
    kinds = {part.get_content_type() for part in message.walk()}
    assert {"text/plain", "text/html", "text/calendar"} <= kinds
    assert (
        "https://townhall.example.org/j/guest@example.com"
        in message.get_body(("plain",)).get_content()
    )  # type: ignore[union-attr]
    (part,) = [p for p in message.walk() if p.get_content_type() == "text/calendar"]
    assert part.get_param("method") == "REQUEST"
    calendar = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    assert str(calendar["METHOD"]) == "REQUEST"
    (item,) = calendar.walk("VEVENT")
    assert item.decoded("DTSTART").isoformat() == "2031-05-04T14:00:00+00:00"
    assert str(item["ATTENDEE"]).lower() == "mailto:guest@example.com"
    assert str(item["ORGANIZER"]).lower().endswith("@example.org")
    (job,) = jobs(sessions)
    assert (job.id, job.status, job.attempts, job.sent_at) == (job_id, "sent", 1, T0)
    assert job.delivered_to == f"127.0.0.1:{smtp.port}"
    assert job.locked_until is None
    assert await worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}").run_once(T0) == 0


async def test_one_pass_delivers_more_than_a_batch(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    recipients = [f"guest{n}@example.com" for n in range(mailer.BATCH * 2 + 3)]
    queue(sessions, *recipients)
    assert await worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}").run_once(T0) == len(
        recipients
    )
    assert sorted(r.rcpt_tos[0] for r in smtp.inbox.received) == sorted(recipients)
    assert {job.status for job in jobs(sessions)} == {"sent"}


async def test_jobs_not_yet_due_wait_for_their_time(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    queue(sessions, "guest@example.com")
    mail = worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}")
    assert await mail.run_once(T0 - timedelta(seconds=1)) == 0
    assert await mail.run_once(T0) == 1


async def test_a_refusing_server_gets_retries_with_backoff_until_the_job_fails(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    smtp.inbox.refuse = "451 4.3.0 try later"
    (job_id,) = queue(sessions, "guest@example.com")
    mail = worker(
        sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}", retry_base_seconds=10, max_attempts=3
    )

    assert await mail.run_once(T0) == 1
    (job,) = jobs(sessions)
    assert (job.status, job.attempts) == ("pending", 1)
    assert job.next_attempt_at == T0 + timedelta(seconds=10)
    assert job.last_error.startswith("451") and "try later" in job.last_error
    assert job.locked_until is None

    assert await mail.run_once(T0 + timedelta(seconds=9)) == 0
    assert await mail.run_once(T0 + timedelta(seconds=10)) == 1
    (job,) = jobs(sessions)
    assert (job.status, job.attempts) == ("pending", 2)
    assert job.next_attempt_at == T0 + timedelta(seconds=10 + 20)

    assert await mail.run_once(T0 + timedelta(seconds=30)) == 1
    (job,) = jobs(sessions)
    assert (job.status, job.attempts) == ("failed", 3)
    assert await mail.run_once(T0 + timedelta(days=30)) == 0
    assert smtp.inbox.received == []

    # The organizer's "retry" button, once the server takes mail again.
    smtp.inbox.refuse = ""
    with sessions() as session, session.begin():
        assert mailer.retry_now(session, job_id, now=T0 + timedelta(days=1))
    assert await mail.run_once(T0 + timedelta(days=1)) == 1
    (job,) = jobs(sessions)
    assert (job.status, job.attempts, job.last_error) == ("sent", 4, "")
    assert len(smtp.inbox.received) == 1


async def test_retry_leaves_pending_and_sent_jobs_alone(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    first, second = queue(sessions, "a@example.com", "b@example.com")
    with sessions() as session, session.begin():
        assert not mailer.retry_now(session, first)
        assert not mailer.retry_now(session, 999_999)
    await worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}").run_once(T0)
    with sessions() as session, session.begin():
        assert not mailer.retry_now(session, second)
    assert [job.status for job in jobs(sessions)] == ["sent", "sent"]


async def test_the_backoff_stops_growing_at_six_hours(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    queue(sessions, "guest@example.com")
    mail = worker(
        sessions,
        tmp_path,
        f"smtp://127.0.0.1:{free_port()}",
        retry_base_seconds=3600,
        max_attempts=100,
    )
    now, delays = T0, []
    for _ in range(6):
        assert await mail.run_once(now) == 1
        (job,) = jobs(sessions)
        delays.append(job.next_attempt_at - now)
        now = job.next_attempt_at
    assert [d / timedelta(hours=1) for d in delays] == [1, 2, 4, 6, 6, 6]


async def test_an_unreachable_server_fails_the_whole_batch_at_once(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    queue(sessions, "a@example.com", "b@example.com", "c@example.com")
    mail = worker(sessions, tmp_path, f"smtp://127.0.0.1:{free_port()}")
    assert await mail.run_once(T0) == 3
    for job in jobs(sessions):
        assert (job.status, job.attempts) == ("pending", 1)
        assert "127.0.0.1" in job.last_error
        assert job.next_attempt_at == T0 + timedelta(seconds=10)


async def test_without_smtp_the_outbox_keeps_one_eml_file_per_message(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ids = queue(sessions, "guest@example.com", "odd/../name@example.com")
    assert await worker(sessions, tmp_path).run_once(T0) == 2
    outbox = tmp_path / "outbox"
    assert stat.S_IMODE(outbox.stat().st_mode) == 0o700
    names = sorted(path.name for path in outbox.iterdir())
    assert names == [
        f"{ids[0]:06d}-guest@example.com.eml",
        f"{ids[1]:06d}-odd_.._name@example.com.eml",
    ]
    for path in outbox.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    message = email.message_from_bytes(
        (outbox / names[0]).read_bytes(), policy=email.policy.default
    )
    assert str(message["To"]) == "guest@example.com"
    assert "text/calendar" in {p.get_content_type() for p in message.walk()}
    assert [(job.status, job.delivered_to) for job in jobs(sessions)] == [
        ("sent", name) for name in names
    ]


async def test_a_restart_during_retries_loses_nothing_and_sends_each_mail_once(
    database_url: str, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    recipients = [f"guest{n}@example.com" for n in range(5)]
    queue(sessions, *recipients)
    port = free_port()
    url = f"smtp://127.0.0.1:{port}"
    assert (
        await worker(sessions, tmp_path, url, max_attempts=50).run_once(T0) == 5
    )  # nobody listens
    assert {(job.status, job.attempts) for job in jobs(sessions)} == {("pending", 1)}

    # The process is gone; the mail server comes back; a new process opens the database.
    with SmtpServer(port) as smtp:
        engine = make_engine(database_url)
        try:
            fresh = make_session_factory(engine)
            restarted = MailWorker(fresh, settings(url, max_attempts=50), tmp_path / "outbox")
            assert await restarted.run_once(T0 + timedelta(seconds=5)) == 0  # still backing off
            assert await restarted.run_once(T0 + timedelta(seconds=10)) == 5
            assert await restarted.run_once(T0 + timedelta(days=1)) == 0
            assert {(job.status, job.attempts) for job in jobs(fresh)} == {("sent", 2)}
        finally:
            engine.dispose()
    assert sorted(r.rcpt_tos[0] for r in smtp.inbox.received) == recipients


async def test_a_job_whose_worker_died_mid_send_is_sent_again_when_the_lease_runs_out(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    url = f"smtp://127.0.0.1:{smtp.port}"
    queue(sessions, "guest@example.com")
    smtp.inbox.hold = True
    dying = asyncio.create_task(worker(sessions, tmp_path, url).run_once(T0))
    assert await asyncio.to_thread(smtp.inbox.holding.wait, 10)
    dying.cancel()  # the process dies while the server holds the message
    with pytest.raises(asyncio.CancelledError):
        await dying
    (job,) = jobs(sessions)
    assert job.status == "pending" and job.locked_until is not None and job.locked_until > T0

    smtp.inbox.hold = False
    successor = worker(sessions, tmp_path, url)
    assert await successor.run_once(T0 + timedelta(seconds=1)) == 0  # the lease still holds
    assert await successor.run_once(job.locked_until) == 1
    (job,) = jobs(sessions)
    assert (job.status, job.attempts) == ("sent", 1)
    assert [r.rcpt_tos for r in smtp.inbox.received] == [["guest@example.com"]]


async def test_two_workers_on_one_database_send_each_mail_once(
    sessions: sessionmaker[Session], tmp_path: Path, smtp: SmtpServer
) -> None:
    recipients = [f"guest{n}@example.com" for n in range(3 * mailer.BATCH)]
    queue(sessions, *recipients)
    url = f"smtp://127.0.0.1:{smtp.port}"
    one, two = worker(sessions, tmp_path, url), worker(sessions, tmp_path, url)
    counts = await asyncio.gather(one.run_once(T0), two.run_once(T0), one.run_once(T0))
    assert sum(counts) == len(recipients)
    assert sorted(r.rcpt_tos[0] for r in smtp.inbox.received) == sorted(recipients)


async def test_the_worker_loop_survives_failing_passes_and_ends_when_stopped(
    tmp_path: Path, smtp: SmtpServer
) -> None:
    # A database without its tables yet: every pass fails until the migration runs.
    engine = make_engine(f"sqlite:///{tmp_path / 'late.db'}")
    try:
        late = make_session_factory(engine)
        mail = worker(late, tmp_path, f"smtp://127.0.0.1:{smtp.port}", poll_seconds=0.02)
        stop = asyncio.Event()
        loop = asyncio.create_task(mail.run(stop))
        await asyncio.sleep(0.2)
        assert not loop.done()
        upgrade(engine, [VERSIONS])
        queue(late, "guest@example.com", due=None)
        for _ in range(250):
            if smtp.inbox.received:
                break
            await asyncio.sleep(0.02)
        assert [r.rcpt_tos for r in smtp.inbox.received] == [["guest@example.com"]]
        stop.set()
        await asyncio.wait_for(loop, timeout=5)
    finally:
        engine.dispose()


# A CA of our own, trusted through SSL_CERT_FILE as an organisation CA would be system-wide.
@pytest.fixture
def tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[object, object]:
    import ssl

    ca = DevCA.ensure(tmp_path / "ca")
    issued = ca.issue("smtp", ["127.0.0.1"])
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(issued.cert_file, issued.key_file)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.cert_file))
    return context, ca


def check_login(accounts: dict[bytes, bytes]):  # type: ignore[no-untyped-def]
    def authenticator(server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = (
            isinstance(auth_data, LoginPassword)
            and accounts.get(auth_data.login) == auth_data.password
        )
        return AuthResult(success=ok, handled=False)

    return authenticator


async def test_login_after_required_starttls_with_a_url_encoded_password(
    sessions: sessionmaker[Session], tmp_path: Path, tls: tuple[object, object]
) -> None:
    context, _ = tls
    accounts = {b"mailer@example.org": b"p@ss:w/rd%"}
    with SmtpServer(
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticator=check_login(accounts),
    ) as smtp:
        queue(sessions, "guest@example.com", "mike@example.org")
        good = f"smtp://mailer%40example.org:p%40ss%3Aw%2Frd%25@127.0.0.1:{smtp.port}?starttls=required"
        assert await worker(sessions, tmp_path, good).run_once(T0) == 2
        assert [r.tls for r in smtp.inbox.received] == [True, True]
        assert {job.status for job in jobs(sessions)} == {"sent"}

        queue(sessions, "late@example.com")
        bad = f"smtp://mailer%40example.org:wrong@127.0.0.1:{smtp.port}"
        assert await worker(sessions, tmp_path, bad).run_once(T0) == 1
        assert jobs(sessions)[-1].status == "pending"
        assert jobs(sessions)[-1].last_error.startswith("535")


async def test_smtps_delivers_over_tls_from_the_first_byte(
    sessions: sessionmaker[Session], tmp_path: Path, tls: tuple[object, object]
) -> None:
    context, _ = tls
    with SmtpServer(ssl_context=context) as smtp:
        queue(sessions, "guest@example.com")
        assert await worker(sessions, tmp_path, f"smtps://127.0.0.1:{smtp.port}").run_once(T0) == 1
        assert [r.rcpt_tos for r in smtp.inbox.received] == [["guest@example.com"]]


async def test_an_untrusted_certificate_is_refused_even_when_starttls_is_optional(
    sessions: sessionmaker[Session],
    tmp_path: Path,
    tls: tuple[object, object],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    context, _ = tls
    monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "nothing-trusted.pem"))
    with SmtpServer(tls_context=context) as smtp:
        queue(sessions, "guest@example.com")
        assert await worker(sessions, tmp_path, f"smtp://127.0.0.1:{smtp.port}").run_once(T0) == 1
        assert smtp.inbox.received == []
        (job,) = jobs(sessions)
        assert job.status == "pending" and "certificate" in job.last_error.lower()


def test_smtp_urls_name_host_port_credentials_and_tls() -> None:
    plain = parse_smtp_url("smtp://mail.example.org")
    assert (plain.host, plain.port, plain.username, plain.password) == (
        "mail.example.org",
        25,
        "",
        "",
    )
    assert (plain.implicit_tls, plain.start_tls) == (False, None)
    secure = parse_smtp_url("smtps://u%40x:p%3A%2F@mail.example.org")
    assert (secure.port, secure.username, secure.password, secure.implicit_tls) == (
        465,
        "u@x",
        "p:/",
        True,
    )
    assert parse_smtp_url("smtp://h:587?starttls=required").start_tls is True
    assert parse_smtp_url("smtp://h:25?starttls=never").start_tls is False
    assert parse_smtp_url("smtp://[::1]:2525").label == "[::1]:2525"
    for bad in (
        "smtp://",
        "smtp://h?tls=1",
        "smtp://h?starttls=maybe",
        "smtps://h?starttls=required",
        "smtp://h:99999",
    ):
        with pytest.raises(ValueError):
            parse_smtp_url(bad)


def test_a_worker_with_a_bad_smtp_url_refuses_to_start(
    sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="starttls"):
        worker(sessions, tmp_path, "smtp://h?starttls=sometimes")
