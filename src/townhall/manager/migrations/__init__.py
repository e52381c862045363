"""Alembic revisions of the Manager's tables (branch label ``manager``)."""

from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"
