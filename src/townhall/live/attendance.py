"""``Ledger``: who was connected to this live server in one event, and when (issue 13).

A room keeps one ledger of its own participants, the ones connected here
(members below a child are that child's to count): each join opens a
``Visit`` (credential, name, Unix time), each leave, eviction or the event's
end closes it, and a rejoin opens another. The ledger is sans-IO like the
room: times come in as arguments. It is bounded: past ``limit`` visits a
join is only counted in ``missed``, so a report says how incomplete it is
rather than growing without end. The Controller link reports every visit
in each status (``controller.link.EventReport.attendance``); the Center
keeps them by (server, credential, join time), so a report repeated is
harmless. docs/controller.md, "Attendance".
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

__all__ = ["MAX_VISITS", "Ledger", "Visit"]

MAX_VISITS: Final = 5000
"""Visits one server keeps of one event; the control link carries at most this many."""


@dataclass(frozen=True, slots=True)
class Visit:
    """One stay of one participant on this server: Unix seconds; ``left_at`` None while here."""

    credential_id: str
    name: str
    joined_at: float
    left_at: float | None = None


class Ledger:
    """The visits of one event on one server, in the order they began."""

    def __init__(self, limit: int = MAX_VISITS) -> None:
        self._limit = limit
        self._visits: list[Visit] = []
        self._open: dict[str, int] = {}  # name -> index of its open visit
        self.missed = 0  # joins past the limit, not kept

    @property
    def visits(self) -> tuple[Visit, ...]:
        return tuple(self._visits)

    def joined(self, name: str, credential_id: str, at: float) -> None:
        """``name`` is now connected here (a visit still open under the name closes first)."""
        self.left(name, at)
        if len(self._visits) >= self._limit:
            self.missed += 1
            return
        self._open[name] = len(self._visits)
        self._visits.append(Visit(credential_id, name, at))

    def left(self, name: str, at: float) -> None:
        """``name`` is no longer connected here; nothing if it had no open visit."""
        index = self._open.pop(name, None)
        if index is None:
            return
        visit = self._visits[index]
        self._visits[index] = replace(visit, left_at=max(at, visit.joined_at))

    def close_all(self, at: float) -> None:
        """Everyone leaves at once (the event ended here)."""
        for name in list(self._open):
            self.left(name, at)
