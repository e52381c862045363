"""The Manager's tables: servers, trees, tree nodes, and which tree serves which event.

They hang on the Manager's own ``MetaData``: nothing here refers to the
Center's tables, so an event is known only by the Center's integer id. The
database itself holds what it can of the tree rules (a server once per tree,
one main per tree, a parent in the same tree, at most one default tree);
``registry`` checks the rest (no cycles) before anything is written. Times are
naive UTC, as in the Center. Changes here need an Alembic revision in
``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from townhall.store.conventions import component_metadata, now_utc

metadata = component_metadata()


class Base(DeclarativeBase):
    metadata = metadata


class Server(Base):
    """A live server: where participants and child servers reach it, and its credentials."""

    __tablename__ = "manager_servers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    host: Mapped[str] = mapped_column(String(253))
    port: Mapped[int] = mapped_column(Integer)
    zone: Mapped[str] = mapped_column(String(16))  # internal | dmz
    capacity: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
    # The outstanding one-time enrolment secret: its SHA-256 digest and expiry.
    enrol_digest: Mapped[str | None] = mapped_column(String(64))
    enrol_expires_at: Mapped[datetime | None] = mapped_column(DateTime)
    enrolled_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The bearer token the server pulls its configuration with (digest only).
    pull_token_digest: Mapped[str | None] = mapped_column(String(64), unique=True)
    # SHA-256 of the DER of the certificate issued at enrolment, hex.
    cert_fingerprint: Mapped[str | None] = mapped_column(String(64))


class Tree(Base):
    __tablename__ = "manager_trees"
    __table_args__ = (
        # At most one default tree, held by the database across Manager instances.
        Index(
            "uq_manager_trees_one_default",
            "is_default",
            unique=True,
            sqlite_where=text("is_default"),
            postgresql_where=text("is_default"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)


class TreeNode(Base):
    """A server's place in a tree: its parent there, or none for the tree's main server."""

    __tablename__ = "manager_tree_nodes"
    __table_args__ = (
        UniqueConstraint("tree_id", "server_id", name="uq_manager_tree_nodes_tree_server"),
        # The parent must itself be a node of the same tree.
        ForeignKeyConstraint(
            ["tree_id", "parent_server_id"],
            ["manager_tree_nodes.tree_id", "manager_tree_nodes.server_id"],
            name="fk_manager_tree_nodes_parent",
        ),
        # One main server per tree.
        Index(
            "uq_manager_tree_nodes_one_main",
            "tree_id",
            unique=True,
            sqlite_where=text("parent_server_id IS NULL"),
            postgresql_where=text("parent_server_id IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tree_id: Mapped[int] = mapped_column(ForeignKey("manager_trees.id", ondelete="CASCADE"))
    server_id: Mapped[int] = mapped_column(ForeignKey("manager_servers.id"), index=True)
    parent_server_id: Mapped[int | None] = mapped_column(
        ForeignKey("manager_servers.id"), index=True
    )


class EventTree(Base):
    """The tree an event was given; events without a row use the default tree.

    ``event_id`` is the Center's event id, deliberately without a foreign key:
    the Manager owns its data and may live in another database.
    """

    __tablename__ = "manager_event_trees"

    event_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    tree_id: Mapped[int] = mapped_column(
        ForeignKey("manager_trees.id", ondelete="CASCADE"), index=True
    )
    chosen_at: Mapped[datetime] = mapped_column(DateTime, default=now_utc)
