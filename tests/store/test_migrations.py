"""Migrations build the schema from empty on SQLite and PostgreSQL, and match the tables."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from townhall.schema import METADATA, migrate
from townhall.store import make_engine


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
