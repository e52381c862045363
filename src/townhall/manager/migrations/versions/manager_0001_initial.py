"""The Manager's first tables: servers, trees, tree nodes, event trees.

Revision ID: manager_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "manager_0001"
down_revision = None
branch_labels = ("manager",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "manager_servers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("enrol_digest", sa.String(length=64), nullable=True),
        sa.Column("enrol_expires_at", sa.DateTime(), nullable=True),
        sa.Column("enrolled_at", sa.DateTime(), nullable=True),
        sa.Column("pull_token_digest", sa.String(length=64), nullable=True),
        sa.Column("cert_fingerprint", sa.String(length=64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_servers")),
        sa.UniqueConstraint("name", name=op.f("uq_manager_servers_name")),
        sa.UniqueConstraint("pull_token_digest", name=op.f("uq_manager_servers_pull_token_digest")),
    )
    op.create_table(
        "manager_trees",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("is_default", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_trees")),
        sa.UniqueConstraint("name", name=op.f("uq_manager_trees_name")),
    )
    op.create_index(
        "uq_manager_trees_one_default",
        "manager_trees",
        ["is_default"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )
    op.create_table(
        "manager_tree_nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_id", sa.Integer(), nullable=False),
        sa.Column("server_id", sa.Integer(), nullable=False),
        sa.Column("parent_server_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["tree_id"],
            ["manager_trees.id"],
            name=op.f("fk_manager_tree_nodes_tree_id_manager_trees"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["server_id"],
            ["manager_servers.id"],
            name=op.f("fk_manager_tree_nodes_server_id_manager_servers"),
        ),
        sa.ForeignKeyConstraint(
            ["parent_server_id"],
            ["manager_servers.id"],
            name=op.f("fk_manager_tree_nodes_parent_server_id_manager_servers"),
        ),
        sa.ForeignKeyConstraint(
            ["tree_id", "parent_server_id"],
            ["manager_tree_nodes.tree_id", "manager_tree_nodes.server_id"],
            name="fk_manager_tree_nodes_parent",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_manager_tree_nodes")),
        sa.UniqueConstraint("tree_id", "server_id", name="uq_manager_tree_nodes_tree_server"),
    )
    op.create_index(
        op.f("ix_manager_tree_nodes_server_id"), "manager_tree_nodes", ["server_id"], unique=False
    )
    op.create_index(
        op.f("ix_manager_tree_nodes_parent_server_id"),
        "manager_tree_nodes",
        ["parent_server_id"],
        unique=False,
    )
    op.create_index(
        "uq_manager_tree_nodes_one_main",
        "manager_tree_nodes",
        ["tree_id"],
        unique=True,
        sqlite_where=sa.text("parent_server_id IS NULL"),
        postgresql_where=sa.text("parent_server_id IS NULL"),
    )
    op.create_table(
        "manager_event_trees",
        sa.Column("event_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("tree_id", sa.Integer(), nullable=False),
        sa.Column("chosen_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["tree_id"],
            ["manager_trees.id"],
            name=op.f("fk_manager_event_trees_tree_id_manager_trees"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("event_id", name=op.f("pk_manager_event_trees")),
    )
    op.create_index(
        op.f("ix_manager_event_trees_tree_id"), "manager_event_trees", ["tree_id"], unique=False
    )


def downgrade() -> None:
    for table in (
        "manager_event_trees",
        "manager_tree_nodes",
        "manager_trees",
        "manager_servers",
    ):
        op.drop_table(table)
