"""Engines and session factories for SQLite and PostgreSQL.

SQLite gets WAL, foreign keys and a busy timeout so that the web workers and
the mail worker can share the file; a new SQLite file is made 0600 (its
owner's alone). Pools hold 40 connections: a request's session keeps its
connection from its first statement to its end, also while it waits for one
of the web process's few threads (``center.threads``), so more requests than
threads hold one; a busy Center reuses them instead of opening one per request.
On PostgreSQL a transaction that only read ends with COMMIT, not ROLLBACK
(``end_reads_with_commit``), so that psycopg keeps its prepared statements,
and the requests that only read have a small pool of their own, without
transactions and with generic plans (``make_read_session_factory``).
On SQLite the hottest reads may run on the event loop itself
(``make_loop_read_session_factory``), with every write refused there.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from psycopg.pq import TransactionStatus
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

        _pragmas_on_connect(engine, "journal_mode=WAL", "foreign_keys=ON", "synchronous=NORMAL")
        return engine
    # Recycling instead of a ping per checkout: a dead connection fails one request,
    # which the client retries, rather than costing a round trip on every request.
    engine = create_engine(
        url, pool_size=POOL_SIZE, max_overflow=0, pool_timeout=60, pool_recycle=1800
    )
    if engine.dialect.driver == "psycopg":
        end_reads_with_commit(engine)
    return engine


def _pragmas_on_connect(engine: Engine, *pragmas: str) -> None:
    """Run ``PRAGMA <pragma>`` for each of ``pragmas`` on every new SQLite connection."""

    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()


_WROTE = "townhall_wrote"  # in a pooled connection's info: its transaction ran a non-SELECT


def end_reads_with_commit(engine: Engine) -> None:
    """End each transaction of ``engine`` that ran only SELECTs with COMMIT instead of
    ROLLBACK, in a Session's close and in the pool's reset alike.

    psycopg prepares a statement on the server after its fifth execution on a
    connection, and forgets every prepared statement at each ROLLBACK. A read
    (the catalog, an event, a page) commits nothing and so ended in a ROLLBACK:
    no statement of the Center was ever prepared, and PostgreSQL planned the
    catalog's query anew each time (measured with ``log_min_duration_statement``
    under ``bench/center.py``: 0.4 ms of planning for 1.3 ms of execution). For
    a transaction that only read, COMMIT and ROLLBACK change the same nothing;
    one that wrote, or failed, is still rolled back.
    """
    dialect = engine.dialect
    roll_back, commit = dialect.do_rollback, dialect.do_commit

    @event.listens_for(engine, "before_cursor_execute")
    def _note_writes(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        if statement.lstrip()[:6].upper() != "SELECT":
            conn.info[_WROTE] = True

    def do_rollback(connection: Any) -> None:
        raw = getattr(connection, "dbapi_connection", connection)
        if not _took_wrote(connection) and raw.info.transaction_status is TransactionStatus.INTRANS:
            commit(connection)
        else:
            roll_back(connection)

    def do_commit(connection: Any) -> None:
        _took_wrote(connection)
        commit(connection)

    dialect.do_rollback = do_rollback  # type: ignore[method-assign]
    dialect.do_commit = do_commit  # type: ignore[method-assign]


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


def make_read_session_factory(engine: Engine, threads: int = 3) -> sessionmaker[Session]:
    """Sessions for requests that read (``web.deps.in_one_hop``); on PostgreSQL, on a small
    pool of their own, sized for the web process's ``threads``, without a transaction
    (autocommit) and with generic plans.

    Without a transaction each request is spared a BEGIN and a COMMIT, two of its few
    round trips. Each statement then sees what is committed when it runs, as SQLite's
    reads outside a write transaction already do; a write made through such a session
    commits at once, so it is for single-statement writes only (the sign-in's: an account
    the proxy vouches for, an API token's last use).

    ``plan_cache_mode=force_generic_plan``: once psycopg has prepared a statement (its
    fifth execution), PostgreSQL reuses one plan instead of planning it again for each
    call's values. It already did so for the reads by key; the catalog's query it
    planned anew every time (0.32 ms of planning for 0.51 ms of execution,
    ``pg_stat_statements`` under bench/center.py), because its row estimates for the
    known times make a custom plan look cheaper, and the plan it makes is the same
    either way (EXPLAIN). The pool is this factory's alone so that the setting stays
    with the hot reads, whose statements are known, and away from the queues and
    reports, whose values may call for different plans; and so that these statements
    do without the main engine's ``end_reads_with_commit``, whose listener, needless
    without transactions, cost 20-40 us a statement.
    """
    if engine.dialect.name != "postgresql":
        return make_session_factory(engine)
    site = engine.url.query.get("options")  # the site's own, kept
    options = [site] if isinstance(site, str) else []
    readers = create_engine(
        engine.url,
        isolation_level="AUTOCOMMIT",
        # In ``in_one_hop``'s thread only, so no more at once than the process's threads;
        # the overflow is a margin.
        pool_size=threads,
        max_overflow=2,
        pool_timeout=60,
        pool_recycle=1800,
        connect_args={"options": " ".join([*options, _GENERIC_PLANS])},
    )
    return sessionmaker(readers, expire_on_commit=False)


_GENERIC_PLANS = "-c plan_cache_mode=force_generic_plan"


def _took_wrote(connection: Any) -> bool:
    """Whether the transaction of ``connection`` (a pool's proxy) wrote, forgetting it;
    True when the proxy keeps no record (the dialect's first connect)."""
    try:
        info = connection.info
    except (AttributeError, NotImplementedError):
        return True
    return bool(info.pop(_WROTE, False))


_ON_LOOP = "townhall_on_loop"  # in the info of ``make_loop_read_session_factory``'s sessions


class WriteOnLoop(Exception):
    """A write announced (``will_write``) in a session of ``make_loop_read_session_factory``."""


def make_loop_read_session_factory(engine: Engine) -> sessionmaker[Session] | None:
    """Sessions for reads run on the web process's event loop, or None where reads must
    run on a thread: on SQLite only (a file, not a memory database).

    SQLite's reads are CPU in this process that never wait for a lock (WAL), so a
    thread only adds its hop: the queue, a wake-up, the interpreter handed back
    and forth (bench/README.md, ninth pass). Its writes may wait for the write
    lock (``timeout`` 30 s), which must not stall the loop. These sessions have
    connections of their own, a small pool opened with ``PRAGMA query_only``:
    SQLite refuses every write on them at once (``SQLITE_READONLY``, see
    ``refused_on_loop``), before it takes any lock, and the transaction rolls
    back; the caller then does its work again on a thread
    (``web.deps.in_one_hop``). A write that knows it is coming says so first
    (``will_write``), which spares the work before it.
    """
    database = engine.url.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(engine.url)
    if engine.dialect.name != "sqlite" or in_memory:
        return None
    # One session at a time: ``in_one_hop``'s work runs to its end on the loop, awaiting
    # nothing. The overflow is a margin only.
    readers = create_engine(
        engine.url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=1,
        max_overflow=8,
        pool_timeout=60,
    )

    _pragmas_on_connect(readers, "query_only=ON")
    return sessionmaker(readers, expire_on_commit=False, info={_ON_LOOP: True})


def will_write(session: Session) -> None:
    """Say that the caller is about to write through ``session``: in a session of
    ``make_loop_read_session_factory``, WriteOnLoop now, before the work that leads
    to the write, which the thread would only do again (SQLite's refusal of the
    statement is the safety net, and costs that work: an account made at the
    proxy's word cost a join-storm user a tenth more, bench/README.md, ninth pass)."""
    if session.info.get(_ON_LOOP):
        raise WriteOnLoop("a write announced")


def refused_on_loop(error: BaseException) -> bool:
    """Whether ``error`` says a loop read session was asked to write: ``WriteOnLoop``,
    or SQLite's refusal on a ``query_only`` connection (SQLITE_READONLY)."""
    if isinstance(error, WriteOnLoop):
        return True
    orig = getattr(error, "orig", None)
    return (
        isinstance(orig, sqlite3.Error)
        and getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY
    )
