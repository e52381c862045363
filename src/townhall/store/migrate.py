"""Apply the components' Alembic migrations to a database.

Each component passes its version folder; they are combined into one Alembic
environment (``env.py`` beside this module) whose target is the union of the
components' ``MetaData``. Upgrades go to ``heads`` so that every component's
branch is brought up to date.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

_HERE = Path(__file__).parent


def alembic_config(engine: Engine, version_dirs: list[Path]) -> Config:
    config = Config()
    config.set_main_option("script_location", str(_HERE / "alembic"))
    config.set_main_option("version_locations", " ".join(str(p) for p in version_dirs))
    config.set_main_option("path_separator", "space")
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, version_dirs: list[Path]) -> None:
    command.upgrade(alembic_config(engine, version_dirs), "heads")
