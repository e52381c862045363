"""Fixtures of the reverse-proxy suite: one rig (slapd, sign-in service, nginx, Apache, Center).

The rig is started once for the whole suite: its daemons take a second or two
to start, and every test makes its own events and users' sessions. The
Center's database is SQLite in the rig's folder, or a database of its own on
the PostgreSQL server named by ``TOWNHALL_TEST_POSTGRES_URL``, as elsewhere.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.proxy.proxy_support import Rig, apache_skip_reason, running_rig, skip_reason


@pytest.fixture(scope="session")
def proxy_database() -> Iterator[str]:
    postgres = os.environ.get("TOWNHALL_TEST_POSTGRES_URL", "")
    if not postgres:
        with tempfile.TemporaryDirectory(prefix="townhall-proxy-db-") as folder:
            yield f"sqlite:///{Path(folder) / 'townhall.db'}"
        return
    name = "townhall_proxy_" + uuid.uuid4().hex[:12]
    admin = sa.create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    yield sa.engine.make_url(postgres).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def rig(proxy_database: str) -> Iterator[Rig]:
    reason = skip_reason()
    if reason is not None:
        pytest.skip(reason)
    with running_rig(proxy_database) as started:
        yield started


@pytest.fixture
def apache(rig: Rig) -> str:
    """The Apache proxy's URL (skipped where the rig could not give Apache its own address)."""
    if rig.apache_url is None:
        pytest.skip(apache_skip_reason() or "Apache is not running in this rig")
    return rig.apache_url


@pytest.fixture
def nginx(rig: Rig) -> str:
    return rig.nginx_url
