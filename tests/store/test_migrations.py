"""Migrations build the schema from empty on SQLite and PostgreSQL, and match the tables."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from townhall.schema import METADATA, MIGRATIONS, migrate
from townhall.store import make_engine
from townhall.store.migrate import alembic_config


def test_migrations_from_empty_create_every_table_and_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        tables = set(inspect(engine).get_table_names())
        for metadata in METADATA:
            assert set(metadata.tables) <= tables
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), list(METADATA))
        assert differences == []
        # Running again is a no-op, as on every start.
        migrate(engine)
    finally:
        engine.dispose()


def test_account_emails_become_unique_and_the_oldest_local_account_keeps_a_shared_one(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = make_engine(database_url)
    config = alembic_config(engine, list(MIGRATIONS))
    try:
        command.upgrade(config, "center_0002")
        users = [
            (1, "sso-first", "Boss@Example.org", "sso"),
            (2, "boss", "boss@example.org", "local"),
            (3, "copy", "BOSS@example.org", "local"),
            (4, "solo", "Solo@Example.org", "local"),
        ]
        with engine.begin() as connection:
            for user_id, name, email, source in users:
                connection.execute(
                    text(
                        "INSERT INTO center_users (id, username, email, display_name, role, "
                        "timezone, source, active, created_at) VALUES (:id, :name, :email, '', "
                        "'member', '', :source, true, CURRENT_TIMESTAMP)"
                    ),
                    {"id": user_id, "name": name, "email": email, "source": source},
                )
        migrate(engine)
        with engine.connect() as connection:
            emails = dict(
                connection.execute(text("SELECT username, email FROM center_users")).all()
            )
        assert emails == {
            "sso-first": None,
            "boss": "boss@example.org",
            "copy": None,
            "solo": "solo@example.org",
        }
        printed = capsys.readouterr().out
        assert "account 1 shared the email boss@example.org with account 2" in printed
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(
                text("UPDATE center_users SET email = 'solo@example.org' WHERE id = 2")
            )
    finally:
        engine.dispose()
