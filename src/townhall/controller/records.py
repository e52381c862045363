"""Reading and writing the Controller's own table (``tables.Assignment``).

Plain functions over a SQLAlchemy ``Session`` that do not commit: the caller
decides the transaction. They turn rows into the Planner's
``StoredAssignment`` values and back, and know nothing of any other
component's tables.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from townhall.controller.plan import StoredAssignment
from townhall.controller.tables import Assignment

__all__ = ["forget_event", "load_assignments", "save_assignments"]


def load_assignments(session: Session) -> list[StoredAssignment]:
    rows = session.scalars(select(Assignment).order_by(Assignment.event_id, Assignment.server))
    return [
        StoredAssignment(row.event_id, row.server, row.role, row.parent, row.link_secret)
        for row in rows
    ]


def save_assignments(session: Session, event_id: int, rows: Sequence[StoredAssignment]) -> None:
    """Replace the rows of ``event_id`` by ``rows``; a row that is unchanged stays as it was."""
    existing = {
        row.server: row
        for row in session.scalars(select(Assignment).where(Assignment.event_id == event_id))
    }
    wanted = {row.server: row for row in rows if row.event_id == event_id}
    for server, row in existing.items():
        if server not in wanted:
            session.delete(row)
    for server, value in wanted.items():
        current = existing.get(server)
        if current is None:
            session.add(
                Assignment(
                    event_id=event_id,
                    server=server,
                    role=value.role,
                    parent=value.parent,
                    link_secret=value.link_secret,
                )
            )
        elif (current.role, current.parent, current.link_secret) != (
            value.role,
            value.parent,
            value.link_secret,
        ):
            current.role, current.parent = value.role, value.parent
            current.link_secret = value.link_secret
    session.flush()


def forget_event(session: Session, event_id: int) -> None:
    session.execute(delete(Assignment).where(Assignment.event_id == event_id))
