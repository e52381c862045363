"""Every component's migrations in one list, for whoever prepares a database.

Components own their tables and Alembic branches; this is the one place that
names them all, so the CLI, the tests and the benchmarks cannot drift apart
when a component is added. ``townhall.store`` stays ignorant of components.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from townhall.center.migrations import VERSIONS as CENTER_VERSIONS
from townhall.manager.migrations import VERSIONS as MANAGER_VERSIONS
from townhall.store import upgrade

MIGRATIONS: tuple[Path, ...] = (CENTER_VERSIONS, MANAGER_VERSIONS)


def migrate(engine: Engine) -> None:
    """Bring every component's tables up to date."""
    upgrade(engine, list(MIGRATIONS))
