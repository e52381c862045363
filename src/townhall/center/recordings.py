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
and deleting the folder removes it. With ``storage.kind = "s3"`` the
recorder service uploads each finished part to the object store and records
it here (``record_stored_part``, table ``center_stored_parts``): then the
rows are the record, the store holds the bytes, and a part appears once it
is uploaded. Who may watch is who may see the event
(``events.get_visible``: a private event's outsiders get 404, as for the
event itself); only its managers (``events.can_manage``) may delete it or
ask for a recorder ticket, and only for an event whose recording is on. The
recorder service gets its tickets from ``issue_service_recorder_ticket``
(no user: the same checks but the manager's) and its work list from
``recorded_live_events``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy import delete as sql_delete
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import events, live
from townhall.center.events import EventError
from townhall.center.tables import Event, LiveState, StoredPart, User
from townhall.center.trees import EventTrees
from townhall.config import Settings, StorageSettings
from townhall.objectstore import ObjectStore, StoreUnavailable
from townhall.store.conventions import naive_utc, now_utc
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
    "highest_stored_part",
    "issue_recorder_ticket",
    "issue_service_recorder_ticket",
    "object_store",
    "record_stored_part",
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
    (``.mp4`` for a part whose video is H.264), in ``folder`` or in the object store."""

    number: int
    container: str  # "webm" or "mp4": the media file's extension
    size: int
    seconds: float | None  # None: the recorder did not finish (the file still plays)
    complete: bool
    has_chat: bool
    folder: Path | None  # None: the part is in the object store (storage.kind = "s3")

    @property
    def suffix(self) -> str:
        """What the part's file names add: "" for the first, ``-n`` for the others."""
        return "" if self.number == 1 else f"-{self.number}"

    @property
    def media_name(self) -> str:
        return f"recording{self.suffix}.{self.container}"

    @property
    def chat_name(self) -> str:
        return f"chat{self.suffix}.vtt"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES[self.container]


@dataclass(frozen=True, slots=True)
class Recording:
    """One event's recording as the Center shows it: its parts in order, and their totals."""

    event_id: int
    parts: tuple[Part, ...]  # at least one

    @property
    def has_chat(self) -> bool:
        return self.parts[0].has_chat

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
        try:
            size = (where / f"recording{suffix}.{container}").stat().st_size
        except OSError:
            continue
        break
    else:
        return None
    summary = _summary(where / f"recording{suffix}.json")
    seconds = summary.get("seconds")
    return Part(
        number=number,
        container=container,
        size=size,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        complete=summary.get("complete") is True,
        has_chat=(where / f"chat{suffix}.vtt").is_file(),
        folder=where,
    )


def find(settings: Settings, session: Session, event_id: int) -> Recording | None:
    """The event's recording (every part, by number), or None: from the folder, or from
    the parts the recorder service stored (``center_stored_parts``) with S3 storage."""
    if settings.storage.kind == "s3":
        rows = session.scalars(
            select(StoredPart).where(StoredPart.event_id == event_id).order_by(StoredPart.number)
        )
        stored = tuple(
            Part(
                number=row.number,
                container=row.container,
                size=row.media_bytes,
                seconds=row.seconds,
                complete=row.complete,
                has_chat=row.has_chat,
                folder=None,
            )
            for row in rows
        )
        return Recording(event_id=event_id, parts=stored) if stored else None
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


def with_recordings(settings: Settings, session: Session, event_ids: Iterable[int]) -> set[int]:
    """Which of these events have a recording (the catalog's mark: part 1 is always there)."""
    if settings.storage.kind == "s3":
        wanted = list(event_ids)
        return (
            set(
                session.scalars(
                    select(StoredPart.event_id).distinct().where(StoredPart.event_id.in_(wanted))
                )
            )
            if wanted
            else set()
        )
    if not (settings.data / "recordings").is_dir():
        return set()  # nothing recorded yet: one stat, not one per event of the page
    return {
        event_id
        for event_id in event_ids
        if any((folder(settings, event_id) / f"recording.{c}").is_file() for c in MEDIA_TYPES)
    }


def delete(settings: Settings, session: Session, event_id: int, user: User) -> None:
    """Remove the event's recording, every part; managers only (403), 404 when there is
    none, 503 ``store_unavailable`` when the object store cannot delete it now."""
    events.get_managed(session, event_id, user)
    if find(settings, session, event_id) is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recording")
    if settings.storage.kind == "s3":
        try:
            object_store(settings.storage).delete_event(event_id)
        except StoreUnavailable as error:
            raise EventError(503, "store_unavailable", str(error)) from error
        session.execute(sql_delete(StoredPart).where(StoredPart.event_id == event_id))
        session.commit()
        return
    shutil.rmtree(folder(settings, event_id))


@functools.lru_cache(maxsize=4)
def object_store(storage: StorageSettings) -> ObjectStore:
    """The object store of these settings, one client per process (it is thread-safe)."""
    return ObjectStore(storage)


def record_stored_part(
    session: Session,
    event_id: int,
    *,
    number: int,
    container: str,
    media_bytes: int,
    has_chat: bool,
    seconds: float | None,
    complete: bool,
) -> None:
    """Attach a part the recorder service uploaded to the event (again: the row is
    replaced); the caller commits. An event deleted meanwhile gets nothing (its objects
    are left to the store's lifecycle rules)."""
    if container not in MEDIA_TYPES or not 1 <= number <= MAX_PARTS or media_bytes < 0:
        raise ValueError(f"not a part: {number} {container} {media_bytes}")
    if session.get(Event, event_id) is None:
        return
    session.merge(
        StoredPart(
            event_id=event_id,
            number=number,
            container=container,
            media_bytes=media_bytes,
            has_chat=has_chat,
            seconds=seconds,
            complete=complete,
            stored_at=now_utc(),
        )
    )


def highest_stored_part(session: Session, event_id: int) -> int:
    """The highest part number stored for the event (0 for none): a new run writes after it."""
    return int(
        session.scalar(
            select(func.coalesce(func.max(StoredPart.number), 0)).where(
                StoredPart.event_id == event_id
            )
        )
        or 0
    )


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
