"""How the engine ends transactions: what was not committed is gone; on PostgreSQL, reads
keep psycopg's prepared statements (a read ends with COMMIT, which changes nothing); on
SQLite, SQLite itself refuses every write in the sessions for reads on the event loop."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from townhall.store import make_engine
from townhall.store.engine import (
    WriteOnLoop,
    make_loop_read_session_factory,
    make_read_session_factory,
    make_session_factory,
    refused_on_loop,
    will_write,
)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)"))
        connection.execute(text("INSERT INTO notes VALUES (1, 'kept')"))
    yield engine
    engine.dispose()


def bodies(engine: Engine) -> list[str]:
    with make_session_factory(engine)() as session:
        return list(session.scalars(text("SELECT body FROM notes ORDER BY id")))


def test_a_write_never_committed_is_rolled_back_after_reads_in_the_same_session(
    engine: Engine,
) -> None:
    sessions = make_session_factory(engine)
    with sessions() as session:
        assert session.scalar(text("SELECT body FROM notes WHERE id = 1")) == "kept"
        session.execute(text("UPDATE notes SET body = 'changed' WHERE id = 1"))
        session.execute(text("INSERT INTO notes VALUES (2, 'added')"))
        assert session.scalar(text("SELECT count(*) FROM notes")) == 2
    assert bodies(engine) == ["kept"]


def test_a_failed_read_is_rolled_back_and_the_connection_serves_the_next_request(
    engine: Engine,
) -> None:
    sessions = make_session_factory(engine)
    with sessions() as session, pytest.raises(DBAPIError):
        session.execute(text("SELECT body FROM no_such_table"))
    with sessions() as session:
        session.execute(text("INSERT INTO notes VALUES (3, 'after')"))
        session.commit()
    assert bodies(engine) == ["kept", "after"]


def test_reads_keep_their_prepared_statements_on_postgresql(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("psycopg's prepared statements: PostgreSQL only")
    sessions = make_session_factory(engine)
    for _ in range(8):  # psycopg prepares a statement at its fifth execution
        with sessions() as session:
            assert session.scalar(text("SELECT body FROM notes WHERE id = :id"), {"id": 1})
    with sessions() as session:
        prepared = session.scalars(text("SELECT statement FROM pg_prepared_statements"))
        assert any("FROM notes WHERE id" in statement for statement in prepared)
        session.execute(text("INSERT INTO notes VALUES (4, 'not kept')"))
    assert bodies(engine) == ["kept"]  # a transaction that wrote is still rolled back


def test_a_read_session_holds_no_transaction_on_postgresql(engine: Engine) -> None:
    """``make_read_session_factory``: no BEGIN and COMMIT around a request's reads."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite's reads run outside a transaction already")
    read_sessions = make_read_session_factory(engine, threads=2)
    try:
        with read_sessions() as session:
            assert session.scalar(text("SELECT body FROM notes WHERE id = 1")) == "kept"
            raw = session.connection().connection.dbapi_connection
            assert raw is not None and raw.info.transaction_status is TransactionStatus.IDLE
            session.execute(text("INSERT INTO notes VALUES (5, 'at once')"))
            assert bodies(engine) == ["kept", "at once"]  # seen before this session ends
    finally:
        dispose_bind(read_sessions)
    with make_session_factory(engine)() as session:  # the main pool, in a transaction
        session.execute(text("UPDATE notes SET body = 'not kept' WHERE id = 1"))
    assert bodies(engine) == ["kept", "at once"]


def test_read_sessions_plan_once_on_postgresql_and_keep_the_sites_options(
    database_url: str,
) -> None:
    """The read sessions' pool asks for generic plans, and only it: the main pool's
    statements (queues, reports) keep PostgreSQL's choice. Options the site put in the
    URL (``?options=-c ...``) still apply to both."""
    if not database_url.startswith("postgresql"):
        pytest.skip("plan_cache_mode is PostgreSQL's")
    site = make_url(database_url).update_query_dict(
        {"options": "-c statement_timeout=4321 -c application_name=site"}
    )
    engine = make_engine(site.render_as_string(hide_password=False))
    read_sessions = make_read_session_factory(engine)
    try:
        with read_sessions() as session:
            assert session.scalar(text("SHOW plan_cache_mode")) == "force_generic_plan"
            assert session.scalar(text("SHOW statement_timeout")) == "4321ms"
            assert session.scalar(text("SHOW application_name")) == "site"
        with make_session_factory(engine)() as session:
            assert session.scalar(text("SHOW plan_cache_mode")) == "auto"
            assert session.scalar(text("SHOW statement_timeout")) == "4321ms"
    finally:
        dispose_bind(read_sessions)
        engine.dispose()


def dispose_bind(sessions: sessionmaker[Session]) -> None:
    bind = sessions.kw["bind"]
    assert isinstance(bind, Engine)
    bind.dispose()


def test_a_loop_read_session_reads_and_sqlite_refuses_every_write_on_it(
    engine: Engine,
) -> None:
    loop_sessions = make_loop_read_session_factory(engine)
    if engine.dialect.name != "sqlite":
        assert loop_sessions is None  # a database server's reads keep their thread
        return
    # A memory database keeps its thread: a pool of its own would open another database.
    for memory in ("sqlite://", "sqlite:///:memory:", "sqlite:///file:notes?mode=memory&uri=true"):
        assert make_loop_read_session_factory(create_engine(memory, poolclass=NullPool)) is None
    assert loop_sessions is not None
    writes = [
        "UPDATE notes SET body = 'changed' WHERE id = 1",
        "INSERT INTO notes VALUES (2, 'added')",
        "DELETE FROM notes",
        "CREATE TABLE more_notes (id INTEGER)",
    ]
    for statement in writes:
        with loop_sessions() as session:
            assert session.scalar(text("SELECT body FROM notes WHERE id = 1")) == "kept"
            with pytest.raises(DBAPIError) as refused:
                session.execute(text(statement))
            assert refused_on_loop(refused.value)
    assert bodies(engine) == ["kept"]
    with make_session_factory(engine)() as session:  # the ordinary sessions still write
        session.execute(text("UPDATE notes SET body = 'changed' WHERE id = 1"))
        session.commit()
    with loop_sessions() as session:  # and the loop's next read sees it
        assert session.scalar(text("SELECT body FROM notes WHERE id = 1")) == "changed"


def test_a_write_announced_in_a_loop_read_session_is_refused_at_once(engine: Engine) -> None:
    with make_session_factory(engine)() as session:
        will_write(session)  # an ordinary session: nothing to say
    loop_sessions = make_loop_read_session_factory(engine)
    if loop_sessions is None:
        return  # PostgreSQL: no reads on the loop
    with loop_sessions() as session, pytest.raises(WriteOnLoop) as announced:
        will_write(session)
    assert refused_on_loop(announced.value)
