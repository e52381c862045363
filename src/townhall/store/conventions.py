"""What every component's tables agree on: constraint names and how times are stored.

Each component still owns its ``MetaData`` (``component_metadata()`` makes
one): constraint names follow one convention so that Alembic migrations name
the same things the same way on SQLite and PostgreSQL, and times are stored
as naive UTC (``now_utc``, ``utc``, ``naive_utc`` convert at the edges).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import MetaData

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def component_metadata() -> MetaData:
    """A fresh ``MetaData`` for one component's tables, with the shared naming convention."""
    return MetaData(naming_convention=NAMING_CONVENTION)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def utc(value: datetime) -> datetime:
    """A stored naive-UTC time as an aware one."""
    return value.replace(tzinfo=UTC)


def naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)
