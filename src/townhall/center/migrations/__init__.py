"""Alembic revisions of the Center's tables (branch label ``center``)."""

from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"
