"""Who sees which event: the catalog's SQL filter (``visible_events``) and the per-event
check (``can_view``) agree on every way in, and on every way that is not one.

The catalog's filter is rewritten for speed from time to time (issue 14); this is
what must not change.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session

from townhall.center import accounts, events
from townhall.center.tables import Event, EventRole, Registration, User
from townhall.schema import migrate
from townhall.store.conventions import now_utc
from townhall.store.engine import make_engine


def _event(session: Session, organizer: User, title: str, visibility: str = "private") -> Event:
    starts = now_utc() + timedelta(days=1)
    event = Event(
        uid=f"{title}@test",
        title=title,
        starts_at=starts,
        ends_at=starts + timedelta(hours=1),
        duration_minutes=60,
        kind="meeting",
        visibility=visibility,
        organizer_id=organizer.id,
    )
    session.add(event)
    session.flush()
    return event


def _register(
    session: Session, event: Event, email: str, user: User | None, status: str = "registered"
) -> None:
    session.add(
        Registration(
            event_id=event.id,
            user_id=user.id if user else None,
            email=email,
            source="invited",
            status=status,
        )
    )


def test_the_catalog_and_the_event_check_agree_on_every_way_in(database_url: str) -> None:
    engine = make_engine(database_url)
    migrate(engine)
    with Session(engine) as session:
        olga = accounts.create_user(session, "olga", email="olga@example.org", role="organizer")
        ada = accounts.create_user(session, "ada", email="ada@example.org", role="admin")
        mike = accounts.create_user(session, "mike", email="mike@example.org")
        vera = accounts.create_user(session, "vera", email="vera@example.org", email_verified=False)
        session.flush()
        _event(session, olga, "public", visibility="public")
        _event(session, olga, "nobody's")
        by_account = _event(session, olga, "registered by account")
        _register(session, by_account, "other@example.org", mike)
        by_email = _event(session, olga, "registered by email")
        _register(session, by_email, "mike@example.org", None)
        unverified = _event(session, olga, "unverified email")
        _register(session, unverified, "vera@example.org", None)
        revoked = _event(session, olga, "revoked")
        _register(session, revoked, "mike@example.org", mike, status="revoked")
        presenting = _event(session, olga, "presenting")
        session.add(EventRole(event_id=presenting.id, user_id=mike.id, role="presenter"))
        moderating = _event(session, olga, "moderating")
        session.add(EventRole(event_id=moderating.id, user_id=vera.id, role="moderator"))
        session.commit()
        expected = {
            olga.id: {e.title for e in session.query(Event)},  # organizer of all
            ada.id: {e.title for e in session.query(Event)},  # admin
            mike.id: {"public", "registered by account", "registered by email", "presenting"},
            vera.id: {"public", "moderating"},  # an unverified email is no way in
        }
        every = list(session.query(Event))
        for user in (olga, ada, mike, vera):
            listed, more = events.catalog(session, user, events.CatalogQuery(limit=100))
            assert not more
            assert {e.title for e in listed} == expected[user.id], user.username
            checked = {e.title for e in every if events.can_view(session, e, user)}
            assert checked == expected[user.id], user.username
    engine.dispose()


def test_the_catalog_sees_what_its_session_has_not_yet_written(database_url: str) -> None:
    """It reads through the session's connection, not the ORM: pending rows still count."""
    engine = make_engine(database_url)
    migrate(engine)
    with Session(engine) as session:
        olga = accounts.create_user(session, "olga", email="olga@example.org", role="organizer")
        session.flush()
        _event(session, olga, "flushed", visibility="public")
        session.add(
            EventRole(event_id=session.query(Event).one().id, user_id=olga.id, role="moderator")
        )
        listed, _ = events.catalog(session, olga, events.CatalogQuery())
        assert [(e.title, e.moderators) for e in listed] == [("flushed", ("olga",))]
    engine.dispose()
