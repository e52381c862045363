"""Parts of recordings kept in an S3-compatible object store.

Revision ID: center_0007
Revises: center_0006
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0007"
down_revision = "center_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "center_stored_parts",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("container", sa.String(length=8), nullable=False),
        sa.Column("media_bytes", sa.BigInteger(), nullable=False),
        sa.Column("has_chat", sa.Boolean(), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=True),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("stored_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_stored_parts_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "number", name=op.f("pk_center_stored_parts")),
    )


def downgrade() -> None:
    op.drop_table("center_stored_parts")
