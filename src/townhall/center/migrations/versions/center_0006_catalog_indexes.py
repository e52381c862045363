"""Catalog indexes (issue 14): the events a user holds a role in, found by user.

``events.visible_events`` asks for ``center_event_roles.event_id`` by
``user_id``; the table's primary key starts with ``event_id``, so without
this index every catalog request read the whole roles table (SQLite: SCAN).
The index covers the subquery (user_id, event_id).

Revision ID: center_0006
Revises: center_0005
"""

from alembic import op

revision = "center_0006"
down_revision = "center_0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_center_event_roles_user_event", "center_event_roles", ["user_id", "event_id"]
    )


def downgrade() -> None:
    op.drop_index("ix_center_event_roles_user_event", table_name="center_event_roles")
