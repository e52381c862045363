"""Every component's migrations in one list, for whoever prepares a database.

Components own their tables and Alembic branches; this is the one place that
names them all, so the CLI, the tests and the benchmarks cannot drift apart
when a component is added. ``townhall.store`` stays ignorant of components.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, MetaData

from townhall.center.migrations import VERSIONS as CENTER_VERSIONS
from townhall.center.tables import metadata as center_metadata
from townhall.controller.migrations import VERSIONS as CONTROLLER_VERSIONS
from townhall.controller.tables import metadata as controller_metadata
from townhall.manager.migrations import VERSIONS as MANAGER_VERSIONS
from townhall.manager.tables import metadata as manager_metadata
from townhall.store import upgrade

MIGRATIONS: tuple[Path, ...] = (CENTER_VERSIONS, MANAGER_VERSIONS, CONTROLLER_VERSIONS)
# The tables those migrations must build, for the test that compares the two.
METADATA: tuple[MetaData, ...] = (center_metadata, manager_metadata, controller_metadata)


def migrate(engine: Engine) -> None:
    """Bring every component's tables up to date."""
    upgrade(engine, list(MIGRATIONS))
