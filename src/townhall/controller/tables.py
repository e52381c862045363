"""The Controller's table: what it assigned, one row per (event, server), with link secrets.

It hangs on the Controller's own ``MetaData`` and refers to no other
component's table: an event is the Center's integer id, a server the
Manager's server name. Kept so that a restarted Controller (or a standby
taking over) sends the very same assignments: a child's link secret must not
change under a link that is up; the secrets are sealed (``linksecrets``), never
kept in clear. Times are naive UTC. Changes need an Alembic
revision in ``migrations/versions`` (branch ``controller``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from townhall.store.conventions import component_metadata, now_utc

metadata = component_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Assignment(Base):
    """A server's place in an event's tree as the Controller assigned it."""

    __tablename__ = "controller_assignments"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(8))  # main | child
    parent: Mapped[str | None] = mapped_column(String(64))
    # What the child presents Up (its parent holds the SHA-256), sealed with the
    # Controller's key (``linksecrets``): in clear, whoever read this table could
    # link to that event's parent.
    sealed_link_secret: Mapped[str | None] = mapped_column(String(255))
    assigned_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
