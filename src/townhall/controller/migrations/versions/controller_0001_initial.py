"""The Controller's first table: its assignments and link secrets.

Revision ID: controller_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "controller_0001"
down_revision = None
branch_labels = ("controller",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "controller_assignments",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("parent", sa.String(length=64), nullable=True),
        sa.Column("link_secret", sa.String(length=128), nullable=True),
        sa.Column("assigned_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id", "server", name=op.f("pk_controller_assignments")),
    )


def downgrade() -> None:
    op.drop_table("controller_assignments")
