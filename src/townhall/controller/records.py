"""Reading and writing the Controller's own table (``tables.Assignment``).

Plain functions over a SQLAlchemy ``Session`` that do not commit: the caller
decides the transaction. They turn rows into the Planner's
``StoredAssignment`` values and back, sealing link secrets on the way in and
opening them on the way out (``linksecrets.LinkSecretBox``: the table never
holds a secret in clear), and know nothing of any other component's tables.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from townhall.controller.linksecrets import LinkSecretBox, LinkSecretError
from townhall.controller.plan import StoredAssignment
from townhall.controller.tables import Assignment

__all__ = ["forget_event", "load_assignments", "save_assignments"]

log = logging.getLogger("townhall.controller")


def _opened(row: Assignment, box: LinkSecretBox) -> str | None:
    if row.sealed_link_secret is None:
        return None
    try:
        return box.open(row.sealed_link_secret, row.event_id, row.server)
    except LinkSecretError as error:
        # As if none were kept: the Planner gives the child a new one.
        log.warning("%s: a new link secret will be sent", error)
        return None


def load_assignments(session: Session, box: LinkSecretBox) -> list[StoredAssignment]:
    rows = session.scalars(select(Assignment).order_by(Assignment.event_id, Assignment.server))
    return [
        StoredAssignment(row.event_id, row.server, row.role, row.parent, _opened(row, box))
        for row in rows
    ]


def save_assignments(
    session: Session, event_id: int, rows: Sequence[StoredAssignment], box: LinkSecretBox
) -> None:
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
        sealed = (
            None if value.link_secret is None else box.seal(value.link_secret, event_id, server)
        )
        current = existing.get(server)
        if current is None:
            session.add(
                Assignment(
                    event_id=event_id,
                    server=server,
                    role=value.role,
                    parent=value.parent,
                    sealed_link_secret=sealed,
                )
            )
        elif (current.role, current.parent, _opened(current, box)) != (
            value.role,
            value.parent,
            value.link_secret,
        ):
            current.role, current.parent = value.role, value.parent
            current.sealed_link_secret = sealed
    session.flush()


def forget_event(session: Session, event_id: int) -> None:
    session.execute(delete(Assignment).where(Assignment.event_id == event_id))
