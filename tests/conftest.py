"""Shared fixtures: a real Center on 127.0.0.1:0, its database, users and HTTP clients.

The database is SQLite in a temporary folder, or PostgreSQL when
``TOWNHALL_TEST_POSTGRES_URL`` names a server (CI runs the suite both ways):
each test then gets a database of its own, created and dropped here.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support import Center, make_settings, start_center
from townhall.config import Settings

POSTGRES_URL = os.environ.get("TOWNHALL_TEST_POSTGRES_URL", "")


@pytest.fixture
def database_url(tmp_path: Path) -> Iterator[str]:
    if not POSTGRES_URL:
        yield f"sqlite:///{tmp_path / 'townhall.db'}"
        return
    name = "townhall_test_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    """Override in a test module to start the Center with other settings."""
    return make_settings(tmp_path / "data", database_url)


@pytest.fixture
def center(center_settings: Settings) -> Iterator[Center]:
    """A running Center with an organizer ``olga``, a member ``mike`` and an admin ``ada``."""
    server, running = start_center(center_settings)
    with server as url:
        running.url = url
        running.add_user("ada", role="admin")
        running.add_user("olga", role="organizer")
        running.add_user("mike", role="member")
        yield running
