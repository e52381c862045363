"""The background mail queue: jobs in the database, delivered by SMTP or to the outbox.

``enqueue`` adds a ``MailJob`` holding the whole serialised message to the
caller's session, so an event change and its mails commit together.
``MailWorker`` claims due jobs a batch at a time by writing a lease
(``locked_until``) in a short transaction — a conditional UPDATE, so two
workers never claim one job, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL so
several Center instances share the queue (docs/architecture.md, "Beyond one
machine") — then sends outside any transaction and records each result. A
worker that dies holding a lease leaves its jobs to be claimed again when the
lease runs out: delivery is at least once, never lost. Failures back off
exponentially (``retry_base_seconds`` doubling, at most 6 hours) until
``max_attempts``, when the job shows as failed to its organizer, who can
``retry_now``. Without ``smtp_url`` each message is written to the outbox
folder as ``NNNNNN-recipient.eml`` for an admin to see.
"""

from __future__ import annotations

import asyncio
import email.policy
import email.utils
import logging
import os
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib
from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from townhall.center.tables import Event, MailJob
from townhall.config import MailSettings
from townhall.store.conventions import now_utc

log = logging.getLogger("townhall.center.mailer")

BATCH = 10
MAX_BACKOFF = timedelta(hours=6)


def enqueue(
    session: Session, *, event: Event | None, recipient: str, purpose: str, message: EmailMessage
) -> MailJob:
    """Queue ``message`` for ``recipient`` in ``session``; the caller commits."""
    if event is not None and event.id is None:
        session.flush()
    job = MailJob(
        event_id=event.id if event is not None else None,
        recipient=recipient,
        subject=str(message.get("Subject", ""))[:300],
        purpose=purpose,
        message=message.as_bytes(policy=email.policy.SMTP),
        status="pending",
        attempts=0,
        next_attempt_at=now_utc(),
        last_error="",
        delivered_to="",
    )
    session.add(job)
    return job


def retry_now(session: Session, job_id: int, *, now: datetime | None = None) -> bool:
    """Put a failed job back in the queue, due at once; False if it was not failed."""
    job = session.get(MailJob, job_id)
    if job is None or job.status != "failed":
        return False
    job.status = "pending"
    job.next_attempt_at = now or now_utc()
    job.locked_until = None
    return True


@dataclass(frozen=True, slots=True)
class SmtpTarget:
    """Where ``smtp_url`` points: ``smtp[s]://[user[:password]@]host[:port][?starttls=…]``."""

    host: str
    port: int
    username: str
    password: str
    implicit_tls: bool
    # aiosmtplib's start_tls: None = when offered, True = required, False = never.
    start_tls: bool | None

    @property
    def label(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


_STARTTLS = {"auto": None, "required": True, "never": False}


def parse_smtp_url(url: str) -> SmtpTarget:
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ValueError("smtp_url must look like smtp://user:password@host:port")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - {"starttls"}
    if unknown:
        raise ValueError(f"smtp_url: unknown option(s) {', '.join(sorted(unknown))}")
    starttls = query.get("starttls", ["auto"])[-1].lower()
    if starttls not in _STARTTLS:
        raise ValueError("smtp_url: starttls must be auto, required or never")
    implicit = parts.scheme == "smtps"
    if implicit and starttls != "auto":
        raise ValueError("smtp_url: smtps:// is TLS from the start; starttls does not apply")
    try:
        port = parts.port
    except ValueError as error:
        raise ValueError(f"smtp_url: {error}") from None
    return SmtpTarget(
        host=parts.hostname,
        port=port or (465 if implicit else 25),
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
        implicit_tls=implicit,
        start_tls=None if implicit else _STARTTLS[starttls],
    )


@dataclass(frozen=True, slots=True)
class _Claim:
    id: int
    recipient: str
    message: bytes
    attempts: int
    lease: datetime


class _ConnectFailed(Exception):
    """The server could not be reached or refused us: every job of the batch fails alike."""


def _describe(error: BaseException) -> str:
    if isinstance(error, _ConnectFailed) and error.__cause__ is not None:
        error = error.__cause__
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        text = "; ".join(f"{e.code} {e.message}" for e in error.recipients)
    elif isinstance(error, aiosmtplib.SMTPResponseException):
        text = f"{error.code} {error.message}"
    elif isinstance(error, TimeoutError) and not str(error):
        text = "timed out"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:300]


def _safe_name(recipient: str) -> str:
    return re.sub(r"[^A-Za-z0-9@._+-]", "_", recipient)[:100]


class MailWorker:
    """Delivers the queued mail; ``run`` loops, ``run_once`` makes one pass."""

    def __init__(
        self, session_factory: sessionmaker[Session], settings: MailSettings, outbox_dir: Path
    ) -> None:
        self._sessions = session_factory
        self._settings = settings
        self._outbox = outbox_dir
        # A bad URL is a configuration error: refuse to start rather than fail every job.
        self._smtp = parse_smtp_url(settings.smtp_url) if settings.smtp_url else None
        self._envelope_from = email.utils.parseaddr(settings.sender)[1]
        # Long enough for a whole batch; a job is only started while well inside it.
        self._lease_seconds = settings.timeout_seconds * (BATCH + 3)
        self._last_start = settings.timeout_seconds * BATCH

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver due mail every ``poll_seconds`` until ``stop`` is set; never dies."""
        while not stop.is_set():
            try:
                await self._drain(None, stop)
            except Exception:
                log.exception("mail delivery pass failed; trying again in the next one")
            try:
                await asyncio.wait_for(stop.wait(), self._settings.poll_seconds)
            except TimeoutError:
                pass

    async def run_once(self, now: datetime | None = None) -> int:
        """Try every job due at ``now`` (naive UTC; default the clock) once; returns how many."""
        return await self._drain(now, None)

    async def _drain(self, now: datetime | None, stop: asyncio.Event | None) -> int:
        tried = 0
        while stop is None or not stop.is_set():
            batch = await asyncio.to_thread(self._claim, now or now_utc())
            if not batch:
                break
            tried += await self._deliver(batch, now)
            if len(batch) < BATCH:
                break
        return tried

    def _claim(self, now: datetime) -> list[_Claim]:
        lease = now + timedelta(seconds=self._lease_seconds)
        due = (
            (MailJob.status == "pending")
            & (MailJob.next_attempt_at <= now)
            & or_(MailJob.locked_until.is_(None), MailJob.locked_until <= now)
        )
        with self._sessions() as session, session.begin():
            ids = session.scalars(
                select(MailJob.id)
                .where(due)
                .order_by(MailJob.next_attempt_at, MailJob.id)
                .limit(BATCH)
                .with_for_update(skip_locked=True)  # PostgreSQL; SQLite serialises writers
            ).all()
            if not ids:
                return []
            # Conditional on still being due: a worker that read the same ids
            # before our commit updates nothing (SQLite has no row locks).
            rows = session.execute(
                update(MailJob)
                .where(MailJob.id.in_(ids), due)
                .values(locked_until=lease)
                .returning(MailJob.id, MailJob.recipient, MailJob.message, MailJob.attempts),
                execution_options={"synchronize_session": False},
            ).all()
        return sorted(
            (_Claim(row.id, row.recipient, row.message, row.attempts, lease) for row in rows),
            key=lambda claim: claim.id,
        )

    async def _deliver(self, batch: list[_Claim], now: datetime | None) -> int:
        started = time.monotonic()
        pending = list(batch)
        tried = 0
        link = _SmtpLink(self._smtp, self._settings.timeout_seconds) if self._smtp else None
        try:
            while pending:
                if time.monotonic() - started > self._last_start:
                    break  # near the end of the lease: leave the rest to the next claim
                claim = pending.pop(0)
                tried += 1
                try:
                    if link is None:
                        delivered_to = await asyncio.to_thread(self._write_outbox, claim)
                    else:
                        await link.send(self._envelope_from, claim.recipient, claim.message)
                        delivered_to = link.label
                except _ConnectFailed as error:
                    # The server is unreachable: do not wait a timeout per job.
                    failed = [claim, *pending]
                    pending.clear()
                    tried += len(failed) - 1
                    await asyncio.to_thread(self._record_failures, failed, error, now)
                except Exception as error:
                    await asyncio.to_thread(self._record_failures, [claim], error, now)
                else:
                    await asyncio.to_thread(self._record_sent, claim, delivered_to, now)
        finally:
            if pending:
                # Also on cancellation (shutdown): give back what was never started.
                self._release(pending)
            if link is not None:
                await link.close()
        return tried

    def _write_outbox(self, claim: _Claim) -> str:
        self._outbox.mkdir(mode=0o700, parents=True, exist_ok=True)
        name = f"{claim.id:06d}-{_safe_name(claim.recipient)}.eml"
        partial = self._outbox / f".{name}.part"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as file:
            file.write(claim.message)
        # Atomic, and idempotent if a lease runs out and the job is written again.
        os.replace(partial, self._outbox / name)
        return name

    def _record_sent(self, claim: _Claim, delivered_to: str, now: datetime | None) -> None:
        with self._sessions() as session, session.begin():
            session.execute(
                update(MailJob)
                .where(MailJob.id == claim.id, MailJob.locked_until == claim.lease)
                .values(
                    status="sent",
                    sent_at=now or now_utc(),
                    delivered_to=delivered_to[:300],
                    attempts=claim.attempts + 1,
                    last_error="",
                    locked_until=None,
                ),
                execution_options={"synchronize_session": False},
            )

    def _record_failures(
        self, claims: list[_Claim], error: BaseException, now: datetime | None
    ) -> None:
        when = now or now_utc()
        text = _describe(error)
        log.warning("mail to %d recipient(s) not delivered: %s", len(claims), text)
        with self._sessions() as session, session.begin():
            for claim in claims:
                attempts = claim.attempts + 1
                delay = min(
                    self._settings.retry_base_seconds * 2.0 ** min(attempts - 1, 64),
                    MAX_BACKOFF.total_seconds(),
                )
                session.execute(
                    update(MailJob)
                    .where(MailJob.id == claim.id, MailJob.locked_until == claim.lease)
                    .values(
                        status="failed" if attempts >= self._settings.max_attempts else "pending",
                        attempts=attempts,
                        last_error=text,
                        next_attempt_at=when + timedelta(seconds=delay),
                        locked_until=None,
                    ),
                    execution_options={"synchronize_session": False},
                )

    def _release(self, claims: list[_Claim]) -> None:
        try:
            with self._sessions() as session, session.begin():
                for claim in claims:
                    session.execute(
                        update(MailJob)
                        .where(MailJob.id == claim.id, MailJob.locked_until == claim.lease)
                        .values(locked_until=None),
                        execution_options={"synchronize_session": False},
                    )
        except Exception:
            log.exception("could not release %d mail job(s); their lease will run out", len(claims))


class _SmtpLink:
    """One SMTP connection reused across a batch, opened when first needed."""

    def __init__(self, target: SmtpTarget, timeout: float) -> None:
        self._target = target
        self._timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        self.label = target.label

    async def _open(self) -> aiosmtplib.SMTP:
        target = self._target
        client = aiosmtplib.SMTP(
            hostname=target.host,
            port=target.port,
            username=target.username or None,
            password=target.password if target.username else None,
            use_tls=target.implicit_tls,
            start_tls=target.start_tls,
            timeout=self._timeout,
        )
        try:
            await client.connect()
        except Exception as error:
            client.close()
            raise _ConnectFailed(str(error)) from error
        return client

    async def send(self, sender: str, recipient: str, message: bytes) -> None:
        if self._client is not None:
            try:
                await self._sendmail(self._client, sender, recipient, message)
                return
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                pass  # the server dropped the idle connection (or said 421): open a new one
        self._client = await self._open()
        await self._sendmail(self._client, sender, recipient, message)

    async def _sendmail(
        self, client: aiosmtplib.SMTP, sender: str, recipient: str, message: bytes
    ) -> None:
        try:
            await client.sendmail(sender, [recipient], message)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            raise  # aiosmtplib has reset the envelope: the connection stays usable
        except BaseException:
            # A timeout, a broken connection or our own cancellation: no polite QUIT.
            self._abort()
            raise

    def _abort(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            client.close()

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.quit()
        except Exception:
            client.close()
