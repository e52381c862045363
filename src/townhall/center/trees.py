"""What the Center asks of the Manager about server trees, as an interface it owns.

The Center shows which tree an event uses, lets the event's managers choose
one, and writes the event's servers into each join ticket. Trees belong to
the Manager, and the Center must not import it (issue 9: the two components
meet through contracts). So the Center declares here the four questions it
asks, with plain values for the answers, and the composition root
(``townhall.webprocess``, ``townhall.cli``) hands it an implementation:
``townhall.inprocess.ManagerTrees`` when both run in one process, and,
later, one over HTTP with mutual TLS when the Manager runs elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.orm import Session

from townhall.wire.names import Zone

__all__ = ["EventTrees", "TreeOption", "TreeRefused", "TreeServer"]


class TreeRefused(Exception):
    """The Manager refused (no such tree, no tree at all); ``message`` says why, for users."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class TreeOption:
    """A tree an event's managers may choose."""

    id: int
    name: str
    is_default: bool


@dataclass(frozen=True, slots=True)
class TreeServer:
    """A live server of an event's tree, as a ticket lists it."""

    name: str
    host: str
    port: int
    zone: Zone


class EventTrees(Protocol):
    """The Manager's side of the Center's contract about trees (the session is the caller's)."""

    def options(self, session: Session) -> Sequence[TreeOption]:
        """Every tree, by name."""
        ...

    def chosen(self, session: Session, event_id: int) -> int | None:
        """The tree the event chose, or None when it uses the default tree."""
        ...

    def choose(self, session: Session, event_id: int, tree_id: int | None) -> None:
        """Give the event ``tree_id`` (None: the default again); TreeRefused if there is none."""
        ...

    def servers(self, session: Session, event_id: int) -> tuple[str, Sequence[TreeServer]]:
        """The event's tree's name and its servers in tree order, the main first;
        TreeRefused when the event has no tree and there is no default."""
        ...
