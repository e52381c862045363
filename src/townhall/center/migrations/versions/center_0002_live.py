"""Live events: ticket credentials, event keys, the live state the Controller reports.

Revision ID: center_0002
Revises: center_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0002"
down_revision = "center_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "center_credentials",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("secret_sha256", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_credentials_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name=op.f("fk_center_credentials_user_id_center_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_credentials")),
    )
    op.create_index(
        "ix_center_credentials_event_user",
        "center_credentials",
        ["event_id", "user_id"],
        unique=False,
    )
    op.create_table(
        "center_event_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_event_keys_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_event_keys")),
    )
    op.create_index(
        op.f("ix_center_event_keys_event_id"), "center_event_keys", ["event_id"], unique=False
    )
    op.create_table(
        "center_live_states",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("servers", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_live_states_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_center_live_states")),
    )


def downgrade() -> None:
    for table in ("center_live_states", "center_event_keys", "center_credentials"):
        op.drop_table(table)
