"""An event's recording in the Center: where it is stored, who may watch, delete, recorder tickets.

Storage is a folder under the data directory, ``<data>/recordings/<event
id>/``, holding ``recording.webm``, ``chat.vtt`` and ``recording.json``
(what the recorder wrote when it finished; a recording without it was cut
short and is shown as incomplete). The files are the record: there is no
table, so a recorder that writes into the folder attaches the recording,
and deleting the folder removes it. Who may watch is who may see the event
(``events.get_visible``: a private event's outsiders get 404, as for the
event itself); only its managers (``events.can_manage``) may delete it or
ask for a recorder ticket, and only for an event whose recording is on.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Final

from sqlalchemy.orm import Session

from townhall import ticket
from townhall.center import events, live
from townhall.center.events import EventError
from townhall.center.tables import Event, User
from townhall.center.trees import EventTrees
from townhall.config import Settings

__all__ = [
    "CHAT_FILE",
    "MEDIA_FILE",
    "RECORDER_NAME",
    "Recording",
    "delete",
    "find",
    "folder",
    "issue_recorder_ticket",
    "with_recordings",
]

MEDIA_FILE: Final = "recording.webm"
CHAT_FILE: Final = "chat.vtt"
SUMMARY_FILE: Final = "recording.json"
RECORDER_NAME: Final = "Recording"
_MAX_SUMMARY: Final = 4096


@dataclass(frozen=True, slots=True)
class Recording:
    """One event's recording as the Center shows it."""

    event_id: int
    media: Path
    chat: Path | None
    size: int
    seconds: float | None  # None: the recorder did not finish (the file still plays)
    complete: bool


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


def find(settings: Settings, event_id: int) -> Recording | None:
    """The event's recording, or None."""
    where = folder(settings, event_id)
    media = where / MEDIA_FILE
    try:
        size = media.stat().st_size
    except OSError:
        return None
    summary = _summary(where / SUMMARY_FILE)
    seconds = summary.get("seconds")
    chat = where / CHAT_FILE
    return Recording(
        event_id=event_id,
        media=media,
        chat=chat if chat.is_file() else None,
        size=size,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        complete=summary.get("complete") is True,
    )


def with_recordings(settings: Settings, event_ids: Iterable[int]) -> set[int]:
    """Which of these events have a recording (the catalog's mark)."""
    if not (settings.data / "recordings").is_dir():
        return set()  # nothing recorded yet: one stat, not one per event of the page
    return {
        event_id for event_id in event_ids if (folder(settings, event_id) / MEDIA_FILE).is_file()
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
