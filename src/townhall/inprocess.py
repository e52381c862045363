"""The components' contracts, served in process from the Center's and the Manager's modules.

``InProcessSources`` implements ``townhall.controller.sources.ControllerSources``
when the Controller runs beside the Center and the Manager on one database:
each call opens a session, asks the owner's own functions
(``center.live.due_events``, ``record_live_state`` and ``record_removals``,
``center.attendance.record`` and ``close``,
``manager.registry.event_tree`` and ``server_by_name``), and hands back the
contract's plain values, never a row. It is part of the composition root:
only ``townhall.cli`` and ``townhall.onebox`` use it, so the Controller
itself imports neither component. A Controller on another machine would be
handed an HTTP client with the same four calls instead (docs/architecture.md).
``ManagerTrees`` likewise implements the Center's ``center.trees.EventTrees``
from ``manager.registry``, for the web process (``townhall.webprocess``), and
``InProcessRecordingSources`` the recorder service's
``recording.sources.RecordingSources`` from ``center.recordings`` (which
events to record, a recorder ticket with no user), for ``townhall recorder``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from townhall import schema
from townhall.center import attendance, live, recordings
from townhall.center import polls as center_polls
from townhall.center.events import EventError
from townhall.center.trees import TreeOption, TreeRefused
from townhall.center.trees import TreeServer as CenterTreeServer
from townhall.config import Settings
from townhall.controller.command import Wiring
from townhall.controller.plan import RemovedMember
from townhall.controller.sources import (
    DueEventLike,
    EventTree,
    LiveState,
    RegisteredServer,
    ReportedVisit,
    ServerState,
    SourceRefused,
    SourceUnavailable,
    TreeServer,
    address_of,
)
from townhall.manager import registry
from townhall.recording import sources as recording_sources
from townhall.store import make_engine, make_session_factory
from townhall.store.conventions import now_utc
from townhall.ticket import TicketContents, open_ticket
from townhall.wire.messages import Poll, Question
from townhall.wire.names import Zone

__all__ = [
    "InProcessRecordingSources",
    "InProcessSources",
    "center_key",
    "controller_wiring",
    "migrate",
    "recorder_sources",
    "sources",
]


class InProcessSources:
    """``ControllerSources`` over the Center's and the Manager's tables in this process."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def due_events(
        self, *, now: datetime, lead: timedelta, grace: timedelta
    ) -> Sequence[DueEventLike]:
        # The Center's own DueEvent has the contract's shape: handed on as it is.
        with _translated(), self._sessions() as session:
            return live.due_events(session, now=now, lead=lead, grace=grace)

    def event_trees(self, event_ids: Sequence[int]) -> dict[int, EventTree | None]:
        trees: dict[int, EventTree | None] = {}
        with _translated(), self._sessions() as session:
            for event_id in event_ids:
                try:
                    resolved, _ = registry.event_tree(session, event_id)
                except registry.ManagerError:
                    trees[event_id] = None
                    continue
                trees[event_id] = EventTree(
                    tuple(
                        TreeServer(
                            name=node.server.name,
                            parent=node.parent,
                            address=address_of(node.server.host, node.server.port),
                            zone=node.server.zone,
                        )
                        for node in resolved.nodes
                    )
                )
            session.rollback()
        return trees

    def registered_server(self, name: str) -> RegisteredServer | None:
        with _translated(), self._sessions() as session:
            server = registry.server_by_name(session, name)
            if server is None:
                return None
            return RegisteredServer(
                name=server.name,
                host=server.host,
                port=server.port,
                zone=server.zone,
                capacity=server.capacity,
                fingerprint=server.cert_fingerprint,
            )

    def report_live_state(
        self, event_id: int, state: LiveState, servers: Sequence[ServerState]
    ) -> None:
        with _translated(), self._sessions() as session:
            live.record_live_state(session, event_id, state.value, servers)

    def report_removals(self, event_id: int, removed: Sequence[RemovedMember]) -> None:
        reported = [
            live.ReportedRemoval(r.credential_id, r.by_credential_id, r.name, r.by_name)
            for r in removed
        ]
        with _translated(), self._sessions() as session:
            live.record_removals(session, event_id, reported)

    def report_attendance(
        self,
        event_id: int,
        server: str,
        zone: str,
        at: datetime | None,
        visits: Sequence[ReportedVisit],
        missed: int,
    ) -> None:
        with _translated(), self._sessions() as session:
            attendance.record(session, event_id, server, zone, at, visits, missed)

    def close_attendance(
        self, event_id: int, server: str | None, at: datetime | None, cause: str
    ) -> None:
        with _translated(), self._sessions() as session:
            attendance.close(session, event_id, server, at, cause)

    def record_polls(
        self, event_id: int, polls: Sequence[Poll], questions: Sequence[Question]
    ) -> None:
        with _translated(), self._sessions() as session:
            center_polls.record_polls(session, event_id, polls, questions)


@contextlib.contextmanager
def sources(settings: Settings) -> Iterator[InProcessSources]:
    """The Center's and the Manager's side on the database of ``settings``, while open."""
    engine = make_engine(settings.database_url)
    try:
        yield InProcessSources(make_session_factory(engine))
    finally:
        engine.dispose()


def migrate(settings: Settings) -> None:
    engine = make_engine(settings.database_url)
    try:
        schema.migrate(engine)
    finally:
        engine.dispose()


def center_key(settings: Settings) -> Ed25519PublicKey:
    """The Center's public key: ``controller.center_public_key``, else (one machine) the
    Center's own, which the Center makes on first use."""
    configured = settings.controller.center_key_bytes()
    if configured is not None:
        return Ed25519PublicKey.from_public_bytes(configured)
    return live.center_public_key(settings)


def controller_wiring() -> Wiring:
    """What ``townhall controller`` and ``townhall live`` are handed on this machine."""
    return Wiring(migrate=migrate, sources=sources, center_key=center_key)


@contextlib.contextmanager
def _translated() -> Iterator[None]:
    """The database's failures as the contract's: a lost connection may pass, the rest not."""
    try:
        yield
    except OperationalError as error:
        raise SourceUnavailable(str(error)) from error
    except (SQLAlchemyError, ValueError) as error:
        raise SourceRefused(str(error)) from error


class ManagerTrees:
    """The Center's ``EventTrees`` answered by the Manager's registry in the same process."""

    def options(self, session: Session) -> list[TreeOption]:
        return [
            TreeOption(id=tree.id, name=tree.name, is_default=tree.is_default)
            for tree in registry.list_trees(session)
        ]

    def chosen(self, session: Session, event_id: int) -> int | None:
        return registry.event_tree_id(session, event_id)

    def choose(self, session: Session, event_id: int, tree_id: int | None) -> None:
        try:
            registry.choose_tree(session, event_id, tree_id)
        except registry.ManagerError as error:
            raise TreeRefused(error.message) from error

    def servers(self, session: Session, event_id: int) -> tuple[str, list[CenterTreeServer]]:
        try:
            tree_name, servers = registry.event_tree_servers(session, event_id)
        except registry.ManagerError as error:
            raise TreeRefused(error.message) from error
        return tree_name, [
            CenterTreeServer(
                name=server.name, host=server.host, port=server.port, zone=Zone(server.zone)
            )
            for server in servers
        ]


class InProcessRecordingSources:
    """``RecordingSources`` over the Center's tables and the Manager's trees in this process."""

    def __init__(self, settings: Settings, sessions: sessionmaker[Session]) -> None:
        self._settings = settings
        self._sessions = sessions
        self._keys = live.CenterKeys(settings)
        self._trees = ManagerTrees()

    def recorded_live_events(self) -> list[int]:
        with _recording_translated(), self._sessions() as session:
            return recordings.recorded_live_events(session, now_utc())

    def recorder_ticket(self, event_id: int) -> TicketContents:
        with _recording_translated(), self._sessions() as session:
            try:
                data = recordings.issue_service_recorder_ticket(
                    session, self._settings, event_id, trees=self._trees, now=now_utc()
                )
            except EventError as error:
                session.rollback()
                raise recording_sources.RecorderTicketRefused(error.code, error.message) from error
            session.commit()
        center_key = self._keys.signing_key().public_key()
        return open_ticket(data, center_public_key=center_key, now=int(time.time()))

    def part_uploaded(self, event_id: int, part: recording_sources.UploadedPart) -> None:
        with _recording_translated(), self._sessions() as session:
            recordings.record_stored_part(session, event_id, **dataclasses.asdict(part))
            session.commit()

    def highest_uploaded_part(self, event_id: int) -> int:
        with _recording_translated(), self._sessions() as session:
            return recordings.highest_stored_part(session, event_id)


@contextlib.contextmanager
def recorder_sources(settings: Settings) -> Iterator[InProcessRecordingSources]:
    """The recorder service's side of the Center on the database of ``settings``, while open."""
    engine = make_engine(settings.database_url)
    try:
        yield InProcessRecordingSources(settings, make_session_factory(engine))
    finally:
        engine.dispose()


@contextlib.contextmanager
def _recording_translated() -> Iterator[None]:
    try:
        yield
    except SQLAlchemyError as error:  # a lost connection or a query that failed: try later
        raise recording_sources.SourceUnavailable(str(error)) from error
