"""An event's recording in the Center: where it is stored, who may watch, delete, recorder tickets.

Storage is a folder under the data directory, ``<data>/recordings/<event
id>/``, holding one or more *parts*, one a recorder run: ``recording.webm``,
``chat.vtt`` and ``recording.json`` for the first, ``recording-2.webm``,
``chat-2.vtt`` and ``recording-2.json`` for a recorder restarted after a
crash, and so on (the names ``townhall.recording.recorder.part_names``
writes); a part whose video is H.264 is ``recording.mp4`` (``-n.mp4``)
instead, and a recorder whose presenter's codec changes starts a part.
``recording*.json`` is what the recorder wrote when it finished; a part
without it was cut short, and a recording whose last part is not complete
is shown as incomplete. The files are the record: there is no
table, so a recorder that writes into the folder attaches the recording,
and deleting the folder removes it. Who may watch is who may see the event
(``events.get_visible``: a private event's outsiders get 404, as for the
event itself); only its managers (``events.can_manage``) may delete it or
ask for a recorder ticket, and only for an event whose recording is on. The
recorder service gets its tickets from ``issue_service_recorder_ticket``
(no user: the same checks but the manager's) and its work list from
``recorded_live_events``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import events, live
from townhall.center.events import EventError
from townhall.center.tables import Event, LiveState, User
from townhall.center.trees import EventTrees
from townhall.config import Settings
from townhall.store.conventions import naive_utc
from townhall.wire.names import LiveState as LiveStates

__all__ = [
    "CHAT_FILE",
    "MAX_PARTS",
    "MEDIA_FILE",
    "MEDIA_TYPES",
    "RECORDER_NAME",
    "Part",
    "Recording",
    "delete",
    "find",
    "folder",
    "issue_recorder_ticket",
    "issue_service_recorder_ticket",
    "recorded_live_events",
    "with_recordings",
]

MEDIA_FILE: Final = "recording.webm"
MEDIA_TYPES: Final = {"webm": "video/webm", "mp4": "video/mp4"}  # a part's container: its type
CHAT_FILE: Final = "chat.vtt"
SUMMARY_FILE: Final = "recording.json"
RECORDER_NAME: Final = "Recording"
MAX_PARTS: Final = 999
_MAX_SUMMARY: Final = 4096
_PART_MEDIA: Final = re.compile(r"recording(?:-([1-9][0-9]{0,2}))?\.(?:webm|mp4)")
# The tree is up: a recorder can join (the Controller's LiveState).
_RECORDABLE: Final = (LiveStates.READY.value, LiveStates.DEGRADED.value)


@dataclass(frozen=True, slots=True)
class Part:
    """One recorder run's files: part 1 is ``recording.webm``, part n ``recording-n.webm``
    (``.mp4`` for a part whose video is H.264)."""

    number: int
    media: Path
    chat: Path | None
    size: int
    seconds: float | None  # None: the recorder did not finish (the file still plays)
    complete: bool

    @property
    def suffix(self) -> str:
        """What the part's file names add: "" for the first, ``-n`` for the others."""
        return "" if self.number == 1 else f"-{self.number}"

    @property
    def container(self) -> str:
        """``webm`` or ``mp4``: the media file's extension."""
        return self.media.suffix.removeprefix(".")

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.container]


@dataclass(frozen=True, slots=True)
class Recording:
    """One event's recording as the Center shows it: its parts in order, and their totals."""

    event_id: int
    parts: tuple[Part, ...]  # at least one

    @property
    def media(self) -> Path:
        return self.parts[0].media

    @property
    def chat(self) -> Path | None:
        return self.parts[0].chat

    @property
    def size(self) -> int:
        return sum(part.size for part in self.parts)

    @property
    def seconds(self) -> float | None:
        """The parts' total, when every part finished (else unknown)."""
        lengths = [part.seconds for part in self.parts]
        return None if None in lengths else sum(s for s in lengths if s is not None)

    @property
    def complete(self) -> bool:
        """The last part's recorder saw the event end."""
        return self.parts[-1].complete

    def part(self, number: int) -> Part | None:
        return next((part for part in self.parts if part.number == number), None)


def folder(settings: Settings, event_id: int) -> Path:
    return settings.data / "recordings" / str(int(event_id))


def _summary(path: Path) -> dict[str, object]:
    """``recording.json``, bounded and checked; {} when missing or not what we wrote."""
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_SUMMARY + 1)
    except OSError:
        return {}
    if len(raw) > _MAX_SUMMARY:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _part(where: Path, number: int) -> Part | None:
    suffix = "" if number == 1 else f"-{number}"
    for container in MEDIA_TYPES:  # one container a part: WebM if both were ever there
        media = where / f"recording{suffix}.{container}"
        try:
            size = media.stat().st_size
        except OSError:
            continue
        break
    else:
        return None
    summary = _summary(where / f"recording{suffix}.json")
    seconds = summary.get("seconds")
    chat = where / f"chat{suffix}.vtt"
    return Part(
        number=number,
        media=media,
        chat=chat if chat.is_file() else None,
        size=size,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        complete=summary.get("complete") is True,
    )


def find(settings: Settings, event_id: int) -> Recording | None:
    """The event's recording (every part in the folder, by number), or None."""
    where = folder(settings, event_id)
    try:
        names = os.listdir(where)
    except OSError:
        return None
    numbers = sorted(
        {int(found.group(1) or 1) for found in map(_PART_MEDIA.fullmatch, names) if found}
    )
    parts = tuple(part for part in (_part(where, n) for n in numbers) if part is not None)
    return Recording(event_id=event_id, parts=parts) if parts else None


def with_recordings(settings: Settings, event_ids: Iterable[int]) -> set[int]:
    """Which of these events have a recording (the catalog's mark: part 1 is always there)."""
    if not (settings.data / "recordings").is_dir():
        return set()  # nothing recorded yet: one stat, not one per event of the page
    return {
        event_id
        for event_id in event_ids
        if any((folder(settings, event_id) / f"recording.{c}").is_file() for c in MEDIA_TYPES)
    }


def delete(settings: Settings, session: Session, event_id: int, user: User) -> None:
    """Remove the event's recording; managers only (403), 404 when there is none."""
    events.get_managed(session, event_id, user)
    if find(settings, event_id) is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recording")
    shutil.rmtree(folder(settings, event_id))


def issue_recorder_ticket(
    session: Session,
    settings: Settings,
    event: Event,
    user: User,
    *,
    trees: EventTrees,
    now: datetime,
) -> bytes:
    """A listener's ticket for ``townhall record``: a guest named ``RECORDER_NAME``.

    Managers only (403 ``not_event_manager``), for an event whose recording
    setting is on (409 ``recording_off``) and that can be joined now.
    """
    if not events.can_manage(event, user):
        raise EventError(403, "not_event_manager", "only the organizer or a moderator may do this")
    return _recorder_ticket(session, settings, event, trees=trees, now=now)


def issue_service_recorder_ticket(
    session: Session, settings: Settings, event_id: int, *, trees: EventTrees, now: datetime
) -> bytes:
    """The recorder service's ticket: as ``issue_recorder_ticket``, with no user.

    The service is a principal of its own, trusted by being run on the
    Center's data folder and database (``townhall recorder``); there is no
    manager to check, but the event must exist (404 ``event_not_found``), have
    its recording on (409 ``recording_off``) and be joinable now.
    """
    event = session.get(Event, int(event_id))
    if event is None:
        raise EventError(404, "event_not_found", f"no event {event_id}")
    return _recorder_ticket(session, settings, event, trees=trees, now=now)


def _recorder_ticket(
    session: Session, settings: Settings, event: Event, *, trees: EventTrees, now: datetime
) -> bytes:
    if not event.recording:
        raise EventError(409, "recording_off", "this event's recording setting is off")
    live.check_joinable(event, now)
    return live.issue_join_ticket(
        session,
        settings,
        event,
        None,
        ticket.Role.PARTICIPANT,
        trees=trees,
        now=now,
        guest_name=RECORDER_NAME,
        client_address="recorder",
    )


def recorded_live_events(session: Session, now: datetime) -> list[int]:
    """Events to record now: recording on, not cancelled nor over, their tree up
    (ready or degraded, as the Controller last reported), by id."""
    if now.tzinfo is not None:
        now = naive_utc(now)
    return list(
        session.scalars(
            select(Event.id)
            .join(LiveState, LiveState.event_id == Event.id)
            .where(
                Event.recording.is_(True),
                Event.status != "cancelled",
                Event.ends_at > now,
                LiveState.state.in_(_RECORDABLE),
            )
            .order_by(Event.id)
        )
    )
