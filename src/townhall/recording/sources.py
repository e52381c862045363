"""``RecordingSources``: what the recorder service asks of the Center, as a contract.

The recorder service (``townhall recorder``, ``recording.service``) needs two
answers: which events to record now, and a ticket to join one of them; with
an object store (``storage.kind = "s3"``) it also tells the Center of each
part it uploaded, and asks which part number a new run starts after. The
recording package may not import the Center (tests/test_imports.py), so it
states the two calls here and is handed an implementation: on the Center's
machine ``townhall.inprocess.InProcessRecordingSources`` answers them from
the Center's own functions on its database. Every call blocks (a database
round trip): the service runs them in a thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from townhall.ticket import TicketContents

__all__ = ["RecorderTicketRefused", "RecordingSources", "SourceUnavailable", "UploadedPart"]


class SourceUnavailable(Exception):
    """The Center could not be asked (its database is down): ask again later."""


class RecorderTicketRefused(Exception):
    """The Center gives no recorder ticket for this event now (``code``: its error code,
    e.g. ``recording_off``, ``event_ended``, ``no_tree``, ``guest_rate_limited``)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


@dataclass(frozen=True, slots=True)
class UploadedPart:
    """A part of an event's recording now in the object store, as the Center lists it."""

    number: int
    container: str  # "webm" or "mp4"
    media_bytes: int
    has_chat: bool
    seconds: float | None  # None: its recorder was cut short
    complete: bool  # its recorder saw the event end


class RecordingSources(Protocol):
    def recorded_live_events(self) -> Sequence[int]:
        """Ids of the events to record now: recording on, tree up (ready or degraded),
        neither cancelled nor over."""
        ...

    def recorder_ticket(self, event_id: int) -> TicketContents:
        """A recorder's ticket for the event (a listener with no user), or
        ``RecorderTicketRefused``."""
        ...

    def part_uploaded(self, event_id: int, part: UploadedPart) -> None:
        """Attach a part now in the object store to the event's recording."""
        ...

    def highest_uploaded_part(self, event_id: int) -> int:
        """The highest part number in the object store for the event (0: none)."""
        ...
