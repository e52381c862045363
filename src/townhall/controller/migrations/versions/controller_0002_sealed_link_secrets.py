"""Link secrets are kept sealed, never in clear.

The clear ``link_secret`` column goes, with its values: the migration has no
key to seal them with, and they must not stay in the database. A running
event's children get new secrets at the Controller's next tick and link again.

Revision ID: controller_0002
Revises: controller_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "controller_0002"
down_revision = "controller_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("controller_assignments") as batch:
        batch.drop_column("link_secret")
        batch.add_column(sa.Column("sealed_link_secret", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("controller_assignments") as batch:
        batch.drop_column("sealed_link_secret")
        batch.add_column(sa.Column("link_secret", sa.String(length=128), nullable=True))
