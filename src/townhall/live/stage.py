"""What the participants of a large event see of its roster: the stage, and a count.

Sending every arrival to every participant costs an event the square of its
size: at a town hall of 10,000 each live server would write tens of millions of
roster entries during the first minute, and hold them in slow listeners' queues.
So an event of more members than the roster limit (``[live] roster_limit``)
shows its participants only the stage (moderators, raised hands, the floor
holder, the owners of open streams), themselves, and the number of members;
moderators and server links still get everyone. Below three quarters of the
limit the participants get everyone again. ``Stage`` keeps who is on stage as
the roster mirror changes, decides when the view switches, and which changes
those shown the stage must hear; the room (room.py) sends them. The rules are
in docs/live.md, "Large events".
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Final

from townhall.wire import Member, StreamInfo

__all__ = ["COUNT_INTERVAL", "Stage"]

COUNT_INTERVAL: Final = 1.0  # seconds between two AttendanceChanged at most


class Stage:
    """Who is on stage by the roster mirror, and whether participants see only them."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("the roster limit must be at least 1")
        self._limit = limit
        self._names: set[str] = set()
        # Every name participants shown the stage may hold: they are sent ``left``
        # for one of these leaving the stage, and for no one else.
        self._shown: set[str] = set()
        self.narrow = False  # participants see the stage only
        self.members_told = 0  # the count last sent to them
        self.told_at = float("-inf")

    def __contains__(self, name: object) -> bool:
        return name in self._names

    @staticmethod
    def owners(streams: Iterable[StreamInfo]) -> frozenset[str]:
        return frozenset(info.owner for info in streams)

    def place(self, member: Member, owners: frozenset[str]) -> None:
        """``member`` joined or changed: on stage or off it by its new state."""
        if member.moderator or member.hand_raised or member.floor or member.name in owners:
            self._names.add(member.name)
        else:
            self._names.discard(member.name)

    def remove(self, names: Iterable[str]) -> None:
        self._names.difference_update(names)

    def clear(self) -> None:
        """The roster mirror starts again (RosterReset): what was shown stays to be undone."""
        self._names.clear()

    def settle(self, members: int) -> bool:
        """Switch the view if ``members`` crossed the limit; True when it switched."""
        if self.narrow:
            switch = members <= self._limit * 3 // 4
        else:
            switch = members > self._limit
        if switch:
            self.narrow = not self.narrow
            self._shown = set(self._names) if self.narrow else set()
        return switch

    def lineup(self, roster: Mapping[str, Member]) -> list[Member]:
        """The stage as it is now, for a participant who is to see it from scratch."""
        self._shown.update(self._names)
        return [roster[name] for name in sorted(self._names) if name in roster]

    def changes(
        self, pending: Iterable[str], roster: Mapping[str, Member]
    ) -> tuple[list[Member], list[str]]:
        """Of the members who changed or left, what those shown the stage must hear:
        who is on stage now (changed), and who was shown and is no longer (left)."""
        on: list[Member] = []
        off: list[str] = []
        for name in pending:
            member = roster.get(name)
            if member is not None and name in self._names:
                on.append(member)
                self._shown.add(name)
            elif name in self._shown:
                self._shown.discard(name)
                off.append(name)
        return on, off

    def count_due(self, members: int, now: float) -> float | None:
        """When the count should next go to those shown the stage: ``now`` or later, or
        None when they know it already."""
        if not self.narrow or members == self.members_told:
            return None
        return max(now, self.told_at + COUNT_INTERVAL)

    def told(self, members: int, now: float) -> None:
        self.members_told, self.told_at = members, now
