"""Closing doors (issue 10): unique account emails, one credential per person, removals,
sign-in throttling.

Existing account emails are lower-cased; where two accounts share one
(case-insensitively), the oldest local account keeps it (else the oldest
account), the others lose it and the migration prints which, so that an
admin can set them again. Emails of existing accounts count as vouched for
(an admin or the proxy set them before the rule existed); new ones from the
proxy do only when ``center.sso.trust_email`` says so.

Revision ID: center_0003
Revises: center_0002
"""

import sqlalchemy as sa
from alembic import op

revision = "center_0003"
down_revision = "center_0002"
branch_labels = None
depends_on = None


def _dedupe_emails() -> None:
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT id, email, source FROM center_users WHERE email IS NOT NULL ORDER BY id")
    ).all()
    sources = {user_id: source for user_id, _, source in rows}
    keeper: dict[str, int] = {}
    for user_id, email, source in rows:  # by id: the oldest first
        lowered = email.strip().lower()
        current = keeper.get(lowered)
        if current is None or (source == "local" and sources[current] != "local"):
            keeper[lowered] = user_id
    for user_id, email, _ in rows:
        lowered = email.strip().lower()
        if keeper[lowered] == user_id:
            if lowered != email:
                bind.execute(
                    sa.text("UPDATE center_users SET email = :email WHERE id = :id"),
                    {"email": lowered, "id": user_id},
                )
        else:
            print(  # noqa: T201 - a migration's note to the admin running it
                f"center_0003: account {user_id} shared the email {lowered} with account "
                f"{keeper[lowered]}, which keeps it; account {user_id} now has no email"
            )
            bind.execute(
                sa.text("UPDATE center_users SET email = NULL WHERE id = :id"), {"id": user_id}
            )


def upgrade() -> None:
    _dedupe_emails()
    with op.batch_alter_table("center_users") as batch:
        batch.drop_index("ix_center_users_email")
        batch.add_column(
            sa.Column("email_verified", sa.Boolean(), nullable=False, server_default=sa.true())
        )
        batch.create_unique_constraint("uq_center_users_email", ["email"])
    with op.batch_alter_table("center_users") as batch:
        batch.alter_column("email_verified", server_default=None)
    with op.batch_alter_table("center_credentials") as batch:
        batch.add_column(sa.Column("registration_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("client_address", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("replaced_at", sa.DateTime(), nullable=True))
        batch.create_foreign_key(
            "fk_center_credentials_registration_id_center_registrations",
            "center_registrations",
            ["registration_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index("ix_center_credentials_registration_id", ["registration_id"])
        batch.create_index("ix_center_credentials_event_address", ["event_id", "client_address"])
    op.create_table(
        "center_removals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("registration_id", sa.Integer(), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("client_address", sa.String(length=64), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("removed_by", sa.String(length=200), nullable=False),
        sa.Column("removed_by_user_id", sa.Integer(), nullable=True),
        sa.Column("removed_at", sa.DateTime(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(), nullable=True),
        sa.Column("lifted_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["center_events.id"],
            name="fk_center_removals_event_id_center_events",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["center_users.id"],
            name="fk_center_removals_user_id_center_users",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["registration_id"],
            ["center_registrations.id"],
            name="fk_center_removals_registration_id_center_registrations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["removed_by_user_id"],
            ["center_users.id"],
            name="fk_center_removals_removed_by_user_id_center_users",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_center_removals"),
        sa.UniqueConstraint(
            "event_id", "credential_id", name="uq_center_removals_event_credential"
        ),
    )
    op.create_index("ix_center_removals_event_id", "center_removals", ["event_id"])
    op.create_table(
        "center_sign_in_failures",
        sa.Column("key", sa.String(length=400), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_failure_at", sa.DateTime(), nullable=False),
        sa.Column("blocked_until", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_center_sign_in_failures"),
    )


def downgrade() -> None:
    op.drop_table("center_sign_in_failures")
    op.drop_index("ix_center_removals_event_id", table_name="center_removals")
    op.drop_table("center_removals")
    with op.batch_alter_table("center_credentials") as batch:
        batch.drop_index("ix_center_credentials_event_address")
        batch.drop_index("ix_center_credentials_registration_id")
        batch.drop_constraint(
            "fk_center_credentials_registration_id_center_registrations", type_="foreignkey"
        )
        batch.drop_column("replaced_at")
        batch.drop_column("client_address")
        batch.drop_column("registration_id")
    with op.batch_alter_table("center_users") as batch:
        batch.drop_constraint("uq_center_users_email", type_="unique")
        batch.drop_column("email_verified")
        batch.create_index("ix_center_users_email", ["email"])
