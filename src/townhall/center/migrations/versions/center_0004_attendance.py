"""Attendance (issue 13): each participant's stays on each live server, and what the
Center last heard from each server.

Revision ID: center_0004
Revises: center_0003
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0004"
down_revision = "center_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "center_attendance",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=16), nullable=False),
        sa.Column("credential_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("guest", sa.Boolean(), nullable=False),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
        sa.Column("left_at", sa.DateTime(), nullable=True),
        sa.Column("ended_by", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name="fk_center_attendance_event_id_center_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_center_attendance"),
        sa.UniqueConstraint(
            "event_id", "server", "credential_id", "joined_at", name="uq_center_attendance_visit"
        ),
    )
    op.create_index("ix_center_attendance_event_id", "center_attendance", ["event_id"])
    op.create_table(
        "center_attendance_servers",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("server", sa.String(length=64), nullable=False),
        sa.Column("zone", sa.String(length=16), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=True),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name="fk_center_attendance_servers_event_id_center_events",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", "server", name="pk_center_attendance_servers"),
    )


def downgrade() -> None:
    op.drop_table("center_attendance_servers")
    op.drop_index("ix_center_attendance_event_id", table_name="center_attendance")
    op.drop_table("center_attendance")
