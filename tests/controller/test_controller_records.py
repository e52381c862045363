"""The Controller's table: assignments round-trip, link secrets never in clear.

tests/store checks its migration.
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from townhall.controller import records
from townhall.controller.linksecrets import LinkSecretBox
from townhall.controller.plan import StoredAssignment
from townhall.schema import migrate
from townhall.store import make_engine, make_session_factory

SECRET_A, SECRET_B = "s" * 43, "t" * 43


def test_assignments_are_saved_replaced_and_forgotten_per_event(
    database_url: str, tmp_path: Path
) -> None:
    box = LinkSecretBox.load_or_create(tmp_path / "link-secrets.key")
    engine = make_engine(database_url)
    try:
        migrate(engine)
        sessions = make_session_factory(engine)
        first = (
            StoredAssignment(7, "child-a", "child", "main", SECRET_A),
            StoredAssignment(7, "main", "main", None, None),
        )
        other = (StoredAssignment(8, "main", "main", None, None),)
        with sessions() as session:
            records.save_assignments(session, 7, first, box)
            records.save_assignments(session, 8, other, box)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session, box) == [*first, *other]

        moved = (
            StoredAssignment(7, "child-b", "child", "child-a", SECRET_B),
            StoredAssignment(7, "child-a", "child", "main", SECRET_A),
            StoredAssignment(7, "main", "main", None, None),
        )
        with sessions() as session:
            records.save_assignments(session, 7, moved, box)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session, box) == [*sorted(moved), *other]
            records.forget_event(session, 7)
            session.commit()
        with sessions() as session:
            assert records.load_assignments(session, box) == list(other)
    finally:
        engine.dispose()


def test_whoever_reads_the_database_finds_no_link_secret(database_url: str, tmp_path: Path) -> None:
    # A backup of the database, or another process on it: its rows must not let
    # anyone present a child's link secret to the event's parent.
    box = LinkSecretBox.load_or_create(tmp_path / "controller" / "link-secrets.key")
    engine = make_engine(database_url)
    try:
        migrate(engine)
        sessions = make_session_factory(engine)
        rows = (
            StoredAssignment(7, "child-a", "child", "main", SECRET_A),
            StoredAssignment(7, "child-b", "child", "main", SECRET_B),
            StoredAssignment(7, "main", "main", None, None),
        )
        with sessions() as session:
            records.save_assignments(session, 7, rows, box)
            session.commit()
        with engine.connect() as connection:
            dump = [
                tuple(row)
                for row in connection.execute(sa.text("SELECT * FROM controller_assignments"))
            ]
            # Swap the sealed values between the two children's rows.
            sealed = dict(
                connection.execute(
                    sa.text(
                        "SELECT server, sealed_link_secret FROM controller_assignments "
                        "WHERE event_id = 7"
                    )
                ).all()
            )
            for server, other in (("child-a", "child-b"), ("child-b", "child-a")):
                connection.execute(
                    sa.text(
                        "UPDATE controller_assignments SET sealed_link_secret = :value "
                        "WHERE event_id = 7 AND server = :server"
                    ),
                    {"value": sealed[other], "server": server},
                )
            connection.commit()
        text = repr(dump)
        assert SECRET_A not in text and SECRET_B not in text
        assert "s" * 10 not in text
        # The key is a file of the Controller's, for its user only.
        assert (tmp_path / "controller" / "link-secrets.key").stat().st_mode & 0o077 == 0
        # A sealed value moved to another row opens nowhere: the Controller hands out
        # new secrets rather than a child's secret to another child.
        with sessions() as session:
            loaded = {row.server: row.link_secret for row in records.load_assignments(session, box)}
        assert loaded == {"child-a": None, "child-b": None, "main": None}
        # Another Controller's key opens nothing either.
        stranger = LinkSecretBox.load_or_create(tmp_path / "other.key")
        with sessions() as session:
            records.save_assignments(session, 7, rows, box)
            session.commit()
            assert all(r.link_secret is None for r in records.load_assignments(session, stranger))
            assert records.load_assignments(session, box) == sorted(rows)
    finally:
        engine.dispose()
