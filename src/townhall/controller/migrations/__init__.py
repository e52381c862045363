"""Alembic revisions of the Controller's table (branch label ``controller``)."""

from pathlib import Path

VERSIONS = Path(__file__).parent / "versions"
