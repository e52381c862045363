"""The Center's tables: users, tokens, sessions, events, registrations, mail, live events.

Times are stored as naive UTC (SQLite has no time zones); ``utc()`` and
``naive_utc()`` convert at the edges. Changes to this file need an Alembic
revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from townhall.store.conventions import component_metadata, now_utc

metadata = component_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class User(Base):
    __tablename__ = "center_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(128), unique=True)
    # Lower case, and unique: an address names one account (docs/sso.md, "Email addresses").
    email: Mapped[str | None] = mapped_column(String(254), unique=True)
    # Someone vouched for ``email`` (an admin, or the proxy's directory when trusted):
    # only then do invitations sent to it count as this account's.
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16), default="member")
    password_hash: Mapped[str | None] = mapped_column(String(255))
    timezone: Mapped[str] = mapped_column(String(64), default="")
    source: Mapped[str] = mapped_column(String(16), default="local")  # local | sso
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)

    @property
    def label(self) -> str:
        return self.display_name or self.username


class ApiToken(Base):
    __tablename__ = "center_api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("center_users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User] = relationship(lazy="joined")


class WebSession(Base):
    __tablename__ = "center_web_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("center_users.id", ondelete="CASCADE"))
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    expires_at: Mapped[datetime] = mapped_column(DateTime, index=True)

    user: Mapped[User] = relationship(lazy="joined")


class Event(Base):
    __tablename__ = "center_events"
    __table_args__ = (Index("ix_center_events_listing", "status", "starts_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    agenda: Mapped[str] = mapped_column(Text, default="")
    starts_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    duration_minutes: Mapped[int] = mapped_column(Integer)
    # Derived from starts_at and duration, kept so the catalog can filter by it in SQL.
    ends_at: Mapped[datetime] = mapped_column(DateTime, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    visibility: Mapped[str] = mapped_column(String(16))
    audio_mode: Mapped[str] = mapped_column(String(16), default="voip")
    recording: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    organizer_id: Mapped[int] = mapped_column(ForeignKey("center_users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)

    organizer: Mapped[User] = relationship(lazy="joined")
    roles: Mapped[list[EventRole]] = relationship(
        lazy="selectin", cascade="all, delete-orphan", back_populates="event"
    )


class EventRole(Base):
    """A moderator or presenter of an event (the organizer is always a moderator)."""

    __tablename__ = "center_event_roles"
    # The catalog's "events I hold a role in" (events.visible_events): the key starts with
    # event_id, so looking up by user needs its own index (migration center_0006).
    __table_args__ = (Index("ix_center_event_roles_user_event", "user_id", "event_id"),)

    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("center_users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(16), primary_key=True)

    event: Mapped[Event] = relationship(back_populates="roles")
    user: Mapped[User] = relationship(lazy="joined")


class Registration(Base):
    __tablename__ = "center_registrations"
    __table_args__ = (
        UniqueConstraint("event_id", "email", name="uq_center_registrations_event_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("center_users.id"), index=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    source: Mapped[str] = mapped_column(String(16))  # invited | self
    status: Mapped[str] = mapped_column(String(16), default="registered")  # | revoked
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)

    user: Mapped[User | None] = relationship(lazy="joined")


class MailJob(Base):
    """One outgoing message, built whole when queued so a restart loses nothing."""

    __tablename__ = "center_mail_jobs"
    __table_args__ = (Index("ix_center_mail_jobs_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int | None] = mapped_column(
        ForeignKey("center_events.id", ondelete="SET NULL"), index=True
    )
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(300))
    purpose: Mapped[str] = mapped_column(String(16))  # invite | update | cancel
    message: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    locked_until: Mapped[datetime | None] = mapped_column(DateTime)
    last_error: Mapped[str] = mapped_column(Text, default="")
    delivered_to: Mapped[str] = mapped_column(String(300), default="")  # smtp host or outbox file
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)


class TicketCredential(Base):
    """A temporary credential handed out in a join ticket.

    The secret itself is never stored: the live servers get ``secret_sha256``
    through the Controller (``live.due_events``). A person holds one live
    credential per event, replaced by each new ticket (``replaced_at``): an
    account (``user_id``) or a guest by the personal link of ``registration_id``.
    A guest of a public event who is neither (both empty) gets one per
    request, counted by ``client_address`` (``live.issue_join_ticket``).
    """

    __tablename__ = "center_credentials"
    __table_args__ = (
        Index("ix_center_credentials_event_user", "event_id", "user_id"),
        Index("ix_center_credentials_event_address", "event_id", "client_address"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("center_events.id", ondelete="CASCADE"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("center_users.id"))
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("center_registrations.id", ondelete="CASCADE"), index=True
    )
    client_address: Mapped[str | None] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(128))
    display_name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(16))  # participant | presenter | moderator
    secret_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)
    # A newer ticket of the same person replaced it: no longer listed for the live
    # servers, but kept (a few) so that a revocation or a removal still finds it.
    replaced_at: Mapped[datetime | None] = mapped_column(DateTime)


class EventKey(Base):
    """An event's AES-256 key (``ticket.generate_event_key``); the newest seals new tickets."""

    __tablename__ = "center_event_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), index=True
    )
    key: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)


class LiveState(Base):
    """What the Controller last reported of an event's server tree (``live.record_live_state``)."""

    __tablename__ = "center_live_states"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(16))
    servers: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of ServerState
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)


class Removal(Base):
    """A moderator removed someone from a live event: that person gets no new ticket for it.

    Reported by the event's main server through the Controller
    (``live.record_removals``); ``lifted_at`` is set when a moderator lets
    the person back in. The person is whoever held the credential: an
    account, a guest's registration (its personal link and email), or for an
    anonymous guest of a public event the address the ticket was asked from.
    """

    __tablename__ = "center_removals"
    __table_args__ = (
        UniqueConstraint("event_id", "credential_id", name="uq_center_removals_event_credential"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), index=True
    )
    credential_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("center_users.id", ondelete="CASCADE"))
    registration_id: Mapped[int | None] = mapped_column(
        ForeignKey("center_registrations.id", ondelete="CASCADE")
    )
    email: Mapped[str | None] = mapped_column(String(254))
    client_address: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")  # as the room showed it
    removed_by: Mapped[str] = mapped_column(String(200), default="")  # the moderator, as shown
    removed_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("center_users.id", ondelete="SET NULL")
    )
    removed_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    lifted_at: Mapped[datetime | None] = mapped_column(DateTime)
    lifted_by: Mapped[str] = mapped_column(String(128), default="")


class SignInFailures(Base):
    """Failed password sign-ins of one key (an account from an address, or an address).

    Kept in the database so that every Center process behind the proxy
    throttles alike (``throttle``).
    """

    __tablename__ = "center_sign_in_failures"

    key: Mapped[str] = mapped_column(String(400), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime)


class Attendance(Base):
    """One stay of one participant on one live server of an event (issue 13, attendance).

    Reported by that server through the Controller (``attendance.record``),
    kept by (event, server, credential, join time) so a report repeated
    changes nothing. ``ended_by`` says how the stay ended: "left" (the server
    saw it), "event-end" (still there when the event ended), "server-loss"
    (the server vanished: ``left_at`` is the last time it was heard of, and
    the report is incomplete there); None while the stay goes on.
    """

    __tablename__ = "center_attendance"
    __table_args__ = (
        UniqueConstraint(
            "event_id",
            "server",
            "credential_id",
            "joined_at",
            name="uq_center_attendance_visit",
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), index=True
    )
    server: Mapped[str] = mapped_column(String(64))
    zone: Mapped[str] = mapped_column(String(16), default="")
    credential_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")  # as the room showed it
    username: Mapped[str] = mapped_column(String(128), default="")  # the credential's
    guest: Mapped[bool] = mapped_column(Boolean, default=False)  # no account
    joined_at: Mapped[datetime] = mapped_column(DateTime)
    left_at: Mapped[datetime | None] = mapped_column(DateTime)
    ended_by: Mapped[str | None] = mapped_column(String(16))


class AttendanceServer(Base):
    """What the Center last heard from one live server of an event about its attendance."""

    __tablename__ = "center_attendance_servers"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), primary_key=True
    )
    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(16), default="")
    last_seen_at: Mapped[datetime | None] = mapped_column(DateTime)  # the server's clock
    missed: Mapped[int] = mapped_column(Integer, default=0)  # joins it could not report


class EventPolls(Base):
    """An event's polls (drafts left out) and questions, whole: what its main server last
    reported through the Controller (``polls.record_polls``), kept after the event."""

    __tablename__ = "center_event_polls"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), primary_key=True
    )
    polls: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of wire Polls, as maps
    questions: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of wire Questions
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)


class StoredPart(Base):
    """One part of an event's recording kept in the object store (``storage.kind = "s3"``).

    Written by the recorder service once the part's files are uploaded
    (``recordings.record_stored_part``): the store holds the bytes, this row
    the facts the Center shows without asking the store, and the catalog's
    mark. With folder storage the files are the record and this table stays empty.
    """

    __tablename__ = "center_stored_parts"

    event_id: Mapped[int] = mapped_column(
        ForeignKey("center_events.id", ondelete="CASCADE"), primary_key=True
    )
    number: Mapped[int] = mapped_column(Integer, primary_key=True)
    container: Mapped[str] = mapped_column(String(8))  # "webm" or "mp4"
    media_bytes: Mapped[int] = mapped_column(BigInteger)
    has_chat: Mapped[bool] = mapped_column(Boolean, default=False)
    seconds: Mapped[float | None] = mapped_column(Float)  # None: its recorder did not finish
    complete: Mapped[bool] = mapped_column(Boolean, default=False)
    stored_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
