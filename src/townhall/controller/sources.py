"""What the Controller needs from the Center and the Manager: one small contract.

The Controller forms trees for events it does not own. The Center knows which
events are due and who may join them (``due_events``) and shows the state the
Controller reports (``report_live_state``), the removals
(``report_removals``) and who attended (``report_attendance``,
``close_attendance``); the Manager knows each event's
tree (``event_trees``) and which live servers exist (``registered_server``).
``ControllerSources`` declares exactly that, in plain frozen values, so the
Controller imports neither ``center`` nor ``manager`` and never opens their
tables: the composition root (``townhall.cli``, ``townhall.onebox``) hands it
an implementation. Today that is ``townhall.inprocess.InProcessSources``,
calling the two components' own functions on one database; when the
Controller runs on another machine, a client of a Center/Manager HTTP
endpoint over mutual TLS implements the same four calls. Every value here
therefore crosses a process boundary as JSON would: ids, strings, bytes,
times, no sessions and no rows; ``event_trees`` takes a batch so one tick is
one round trip. The calls block (the service runs them in a worker thread)
and fail with ``SourceUnavailable`` (try again later) or ``SourceRefused``
(this request will not succeed). docs/controller.md, "What the Controller
reads".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from townhall.controller.plan import (
    DueEventLike,
    EventTree,
    RemovedMember,
    ReportedVisit,
    TreeServer,
)
from townhall.wire.messages import Poll, Question
from townhall.wire.names import LiveState, ServerState

__all__ = [
    "ControllerSources",
    "DueEvent",
    "DueEventLike",
    "EventTree",
    "LiveState",
    "RegisteredServer",
    "ReportedVisit",
    "ServerState",
    "SourceRefused",
    "SourceUnavailable",
    "TreeServer",
    "address_of",
]


class SourceUnavailable(Exception):
    """The Center or the Manager cannot answer now (database down, endpoint unreachable)."""


class SourceRefused(Exception):
    """The Center or the Manager refuses this request (an event deleted meanwhile, say)."""


@dataclass(frozen=True, slots=True)
class DueEvent:
    """An event whose server tree should exist now, as the Center hands it out
    (``DueEventLike``, the shape the Planner reads, as a value to build)."""

    event_id: int
    title: str
    starts_at: datetime  # naive UTC
    ends_at: datetime
    cancelled: bool  # the Controller tears it down
    credentials: Mapping[str, str]  # credential id -> hex SHA-256 of its secret (live ones)
    revoked: frozenset[str]  # revoked registration, or the user's account disabled
    event_keys: tuple[bytes, ...]  # newest first, at least one


@dataclass(frozen=True, slots=True)
class RegisteredServer:
    """A live server as the Manager registered it."""

    name: str
    host: str
    port: int
    zone: str  # a Zone's value
    capacity: int
    fingerprint: str | None  # hex SHA-256 of the certificate it enrolled with; None: local

    @property
    def address(self) -> str:
        return address_of(self.host, self.port)


def address_of(host: str, port: int) -> str:
    """``host:port``, with an IPv6 address in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ControllerSources(Protocol):
    """The Center's and the Manager's side of the Controller's contract."""

    def due_events(
        self, *, now: datetime, lead: timedelta, grace: timedelta
    ) -> Sequence[DueEventLike]:
        """Every event with ``starts_at - lead <= now < ends_at + grace``, by start;
        cancelled ones included and flagged (a ``DueEvent``, or any value of its shape).
        ``now`` is naive UTC."""
        ...

    def event_trees(self, event_ids: Sequence[int]) -> dict[int, EventTree | None]:
        """Each event's resolved tree (the main first), None for an event without one."""
        ...

    def registered_server(self, name: str) -> RegisteredServer | None:
        """The live server registered as ``name``, or None."""
        ...

    def report_live_state(
        self, event_id: int, state: LiveState, servers: Sequence[ServerState]
    ) -> None:
        """Keep the state of the event's tree for the Center to show (replaces the last)."""
        ...

    def report_removals(self, event_id: int, removed: Sequence[RemovedMember]) -> None:
        """Bar the people a moderator removed from new tickets for the event (issue 10)."""
        ...

    def report_attendance(
        self,
        event_id: int,
        server: str,
        zone: str,
        at: datetime | None,
        visits: Sequence[ReportedVisit],
        missed: int,
    ) -> None:
        """Keep these visits of the event on ``server`` (new, changed or again), the
        server's time of the report ``at`` and how many joins it could not report."""
        ...

    def close_attendance(
        self, event_id: int, server: str | None, at: datetime | None, cause: str
    ) -> None:
        """Close the event's visits still open on ``server`` (None: anywhere) at ``at``
        (None: when that server was last heard of), marking them with ``cause``."""

    def record_polls(
        self, event_id: int, polls: Sequence[Poll], questions: Sequence[Question]
    ) -> None:
        """Keep the event's polls and questions, whole, with the event (replaces the last)."""
        ...
