"""Migrations build the schema from empty on SQLite and PostgreSQL, and match the tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from townhall.center.migrations import VERSIONS
from townhall.center.tables import metadata
from townhall.store import make_engine, upgrade


def test_migrations_from_empty_create_every_table_and_match_the_models(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        upgrade(engine, [VERSIONS])
        tables = set(inspect(engine).get_table_names())
        assert set(metadata.tables) <= tables
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
        # Running again is a no-op, as on every start.
        upgrade(engine, [VERSIONS])
    finally:
        engine.dispose()
