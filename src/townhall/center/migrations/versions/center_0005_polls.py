"""Polls and questions kept with the event, as its main server last reported them.

Revision ID: center_0005
Revises: center_0004
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0005"
down_revision = "center_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "center_event_polls",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("polls", sa.Text(), nullable=False),
        sa.Column("questions", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_event_polls_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_center_event_polls")),
    )


def downgrade() -> None:
    op.drop_table("center_event_polls")
