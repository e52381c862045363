"""Engines and session factories for SQLite and PostgreSQL.

SQLite gets WAL, foreign keys and a busy timeout so that the web workers and
the mail worker can share the file. Pools hold as many connections as the
web process has worker threads (40, Starlette's default), so that a busy
Center reuses connections instead of opening one per request.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

POOL_SIZE = 40


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=POOL_SIZE,
            max_overflow=0,
            pool_timeout=60,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # Recycling instead of a ping per checkout: a dead connection fails one request,
    # which the client retries, rather than costing a round trip on every request.
    return create_engine(
        url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=60, pool_recycle=1800
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)
