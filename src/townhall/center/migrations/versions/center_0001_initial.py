"""The Center's first tables: users, tokens, sessions, events, registrations, mail.

Revision ID: center_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0001"
down_revision = None
branch_labels = ("center",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "center_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=128), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_users")),
        sa.UniqueConstraint("username", name=op.f("uq_center_users_username")),
    )
    op.create_index(op.f("ix_center_users_email"), "center_users", ["email"], unique=False)
    op.create_table(
        "center_api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_used_at", sa.DateTime(), nullable=True),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name=op.f("fk_center_api_tokens_user_id_center_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_center_api_tokens_token_hash")),
    )
    op.create_table(
        "center_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=64), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("agenda", sa.Text(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("duration_minutes", sa.Integer(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("visibility", sa.String(length=16), nullable=False),
        sa.Column("audio_mode", sa.String(length=16), nullable=False),
        sa.Column("recording", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("organizer_id", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organizer_id"],
            ["center_users.id"],
            name=op.f("fk_center_events_organizer_id_center_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_events")),
        sa.UniqueConstraint("uid", name=op.f("uq_center_events_uid")),
    )
    op.create_index(
        "ix_center_events_listing",
        "center_events",
        ["status", "starts_at"],
        unique=False,
    )
    op.create_index(op.f("ix_center_events_ends_at"), "center_events", ["ends_at"], unique=False)
    op.create_index(
        op.f("ix_center_events_organizer_id"), "center_events", ["organizer_id"], unique=False
    )
    op.create_index(
        op.f("ix_center_events_starts_at"), "center_events", ["starts_at"], unique=False
    )
    op.create_table(
        "center_web_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name=op.f("fk_center_web_sessions_user_id_center_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_center_web_sessions_token_hash")),
    )
    op.create_index(
        op.f("ix_center_web_sessions_expires_at"),
        "center_web_sessions",
        ["expires_at"],
        unique=False,
    )
    op.create_table(
        "center_event_roles",
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_event_roles_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name=op.f("fk_center_event_roles_user_id_center_users"),
        ),
        sa.PrimaryKeyConstraint("event_id", "user_id", "role", name=op.f("pk_center_event_roles")),
    )
    op.create_table(
        "center_mail_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=True),
        sa.Column("recipient", sa.String(length=254), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("message", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("locked_until", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("delivered_to", sa.String(length=300), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_mail_jobs_event_id_center_events"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_mail_jobs")),
    )
    op.create_index(
        "ix_center_mail_jobs_due", "center_mail_jobs", ["status", "next_attempt_at"], unique=False
    )
    op.create_index(
        op.f("ix_center_mail_jobs_event_id"), "center_mail_jobs", ["event_id"], unique=False
    )
    op.create_table(
        "center_registrations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("display_name", sa.String(length=200), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("revoked_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name=op.f("fk_center_registrations_event_id_center_events"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name=op.f("fk_center_registrations_user_id_center_users"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_center_registrations")),
        sa.UniqueConstraint("event_id", "email", name="uq_center_registrations_event_email"),
    )
    op.create_index(
        op.f("ix_center_registrations_email"), "center_registrations", ["email"], unique=False
    )
    op.create_index(
        op.f("ix_center_registrations_event_id"), "center_registrations", ["event_id"], unique=False
    )
    op.create_index(
        op.f("ix_center_registrations_user_id"), "center_registrations", ["user_id"], unique=False
    )


def downgrade() -> None:
    for table in (
        "center_mail_jobs",
        "center_registrations",
        "center_event_roles",
        "center_events",
        "center_web_sessions",
        "center_api_tokens",
        "center_users",
    ):
        op.drop_table(table)
