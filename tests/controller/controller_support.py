"""Helpers for the Controller's tests: due events, trees, a stepping clock, secrets."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from townhall.center import events, live
from townhall.center.accounts import create_user, user_by_name
from townhall.center.tables import Event
from townhall.config import Settings
from townhall.controller import records
from townhall.controller.identity import controller_ssl_context
from townhall.controller.linksecrets import LinkSecretBox
from townhall.controller.plan import EventTree, TreeServer
from townhall.controller.service import ControllerService
from townhall.inprocess import InProcessSources, ManagerTrees
from townhall.manager import registry
from townhall.schema import migrate
from townhall.store import make_engine, make_session_factory
from townhall.ticket import Role as TicketRole

T0 = datetime(2026, 12, 1, 10, 0, 0)


@dataclass(frozen=True, slots=True)
class Due:
    """The shape of ``townhall.center.live.DueEvent`` the Planner reads."""

    event_id: int
    title: str = "All hands"
    starts_at: datetime = T0
    ends_at: datetime = T0 + timedelta(hours=1)
    cancelled: bool = False
    credentials: Mapping[str, str] = field(default_factory=lambda: {"cred-ana-1": "a" * 64})
    revoked: frozenset[str] = frozenset()
    event_keys: tuple[bytes, ...] = (b"k" * 32,)


def tree(*nodes: tuple[str, str | None], zone: str = "internal") -> EventTree:
    """A tree from (server, parent) pairs, parents first; server i listens on port 9443+i."""
    return EventTree(
        tuple(
            TreeServer(name, parent, f"127.0.0.1:{9443 + index}", "dmz" if "dmz" in name else zone)
            for index, (name, parent) in enumerate(nodes)
        )
    )


class Secrets:
    """Predictable link secrets: secret-0000000000000001, ..."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def __call__(self) -> str:
        return f"secret-{next(self._counter):016d}"


# -- a database with the Center, the Manager and the Controller ----------------------------


class World:
    """Settings on a fresh data folder and database, migrated, with an organizer ``olga``."""

    def __init__(self, data: Path, database_url: str, **controller: object) -> None:
        options: dict[str, object] = {
            "listen": "127.0.0.1:0",
            "tick_seconds": 0.1,
            "report_seconds": 0.2,
            "keepalive_seconds": 1,
        }
        options.update(controller)
        self.settings = Settings(
            data=data, center={"database_url": database_url}, controller=options
        )
        self.engine = make_engine(database_url)
        migrate(self.engine)
        self.sessions = make_session_factory(self.engine)
        with self.sessions() as session:
            create_user(session, "olga", email="olga@example.org", role="organizer")
            create_user(session, "mike", email="mike@example.org", role="member")
            session.commit()

    def close(self) -> None:
        self.engine.dispose()

    def server(self, name: str, port: int = 9443, zone: str = "internal") -> None:
        with self.sessions() as session:
            registry.create_server(
                session, registry.ServerIn(name=name, host="127.0.0.1", port=port, zone=zone)
            )
            session.commit()

    def set_port(self, name: str, port: int) -> None:
        with self.sessions() as session:
            server = registry.server_by_name(session, name)
            assert server is not None
            registry.update_server(session, server, registry.ServerPatch(port=port))
            session.commit()

    def default_tree(self, nodes: list[tuple[str, str | None]]) -> None:
        with self.sessions() as session:
            tree = registry.create_tree(
                session,
                registry.TreeIn(
                    name="campus",
                    nodes=[registry.NodeIn(server=s, parent=p) for s, p in nodes],
                ),
            )
            registry.make_default(session, tree)
            session.commit()

    def schedule(self, *, starts_in: timedelta = timedelta(minutes=5), minutes: int = 60) -> int:
        with self.sessions() as session:
            organizer = user_by_name(session, "olga")
            assert organizer is not None
            event = events.create_event(
                session,
                organizer,
                events.EventIn(
                    title="All hands",
                    starts_at=datetime.now(UTC) + starts_in,
                    duration_minutes=minutes,
                    visibility="public",
                ),
                events.Links("http://center.invalid", lambda _: "http://center.invalid/join"),
                "townhall@example.org",
                "UTC",
            )
            session.commit()
            return event.id

    def ticket(self, event_id: int, username: str = "mike") -> None:
        """A join ticket for ``username``: their credential on the event's list (a new one replaces it)."""
        with self.sessions() as session:
            event = session.get(Event, event_id)
            user = user_by_name(session, username)
            assert event is not None and user is not None
            live.issue_join_ticket(
                session,
                self.settings,
                event,
                user,
                TicketRole.PARTICIPANT,
                trees=ManagerTrees(),
                now=datetime.now(UTC).replace(tzinfo=None),
            )
            session.commit()

    def revoke_all(self, event_id: int, username: str = "mike") -> None:
        """Register ``username`` (if needed) and revoke the registration: its credentials too."""
        links = events.Links("http://center.invalid", lambda _: "http://center.invalid/join")
        with self.sessions() as session:
            event = session.get(Event, event_id)
            user = user_by_name(session, username)
            organizer = user_by_name(session, "olga")
            assert event is not None and user is not None and organizer is not None
            registration = events.register(
                session, event, user, events.RegistrationIn(), links, "townhall@example.org"
            )
            events.revoke_registration(
                session, event, organizer, registration.id, links, "townhall@example.org"
            )
            session.commit()

    def cancel(self, event_id: int) -> None:
        links = events.Links("http://center.invalid", lambda _: "http://center.invalid/join")
        with self.sessions() as session:
            event = session.get(Event, event_id)
            assert event is not None
            events.cancel_event(session, event, links, "townhall@example.org")
            session.commit()

    def live_state(self, event_id: int) -> tuple[str, list[live.ServerState]]:
        with self.sessions() as session:
            return live.live_state(session, event_id)

    def stored(self) -> list[object]:
        with self.sessions() as session:
            return list(records.load_assignments(session, LinkSecretBox.for_settings(self.settings)))

    def controller(self, port: int = 0) -> ControllerService:
        return ControllerService(
            self.settings,
            sessions=self.sessions,
            sources=InProcessSources(self.sessions),
            ssl_context=controller_ssl_context(self.settings),
            center_key=live.center_public_key(self.settings),
            port=port,
        )


async def eventually(check: Callable[[], Awaitable[bool] | bool], what: str) -> None:
    """Wait until ``check()`` holds (no timing is asserted: the bound only stops a hang)."""
    deadline = asyncio.get_running_loop().time() + 15
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.02)
