"""Engines and session factories for SQLite and PostgreSQL.

SQLite gets WAL, foreign keys and a busy timeout so that the web workers and
the mail worker can share the file; a new SQLite file is made 0600 (its
owner's alone). Pools hold 40 connections: a request's session keeps its
connection from its first statement to its end, also while it waits for one
of the web process's few threads (``center.threads``), so more requests than
threads hold one; a busy Center reuses them instead of opening one per request.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

POOL_SIZE = 40


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        database = make_url(url).database
        if database and database != ":memory:" and not database.startswith("file:"):
            path = Path(database)
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Made here, for its owner only: SQLite gives its -wal, -shm and
            # journal files the database file's mode.
            os.close(os.open(path, os.O_RDONLY | os.O_CREAT, 0o600))
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
