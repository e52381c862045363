"""The Controller's table: assignments round-trip (tests/store checks its migration)."""

from __future__ import annotations

from townhall.controller import records
from townhall.controller.plan import StoredAssignment
from townhall.schema import migrate
from townhall.store import make_engine, make_session_factory


def test_assignments_are_saved_replaced_and_forgotten_per_event(database_url: str) -> None:
    engine = make_engine(database_url)
    try:
        migrate(engine)
        sessions = make_session_factory(engine)
        first = (
            StoredAssignment(7, "child-a", "child", "main", "s" * 43),
            StoredAssignment(7, "main", "main", None, None),
        )
        other = (StoredAssignment(8, "main", "main", None, None),)
        with sessions() as session:
            records.save_assignments(session, 7, first)
            records.save_assignments(session, 8, other)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session) == [*first, *other]

        moved = (
            StoredAssignment(7, "child-b", "child", "child-a", "t" * 43),
            StoredAssignment(7, "child-a", "child", "main", "s" * 43),
            StoredAssignment(7, "main", "main", None, None),
        )
        with sessions() as session:
            records.save_assignments(session, 7, moved)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session) == [*sorted(moved), *other]
            records.forget_event(session, 7)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session) == list(other)
    finally:
        engine.dispose()
