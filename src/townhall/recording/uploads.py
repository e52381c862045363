"""``upload_parts``: move an event's recorded parts from the data folder to the object store.

With ``storage.kind = "s3"`` the recorder still writes each part into
``<data>/recordings/<event id>/`` as it records (fragments on a local disk are
what survives a crash), and once no recorder writes there the recorder
service calls ``upload_parts``: part by part, its media file, chat and
summary go into the store, the Center is told (``part_uploaded``), and only
then are the local files deleted. A part whose recorder was killed has no
summary and is uploaded as cut short; a part whose recorder died before
writing a byte is dropped. Every step may be repeated: killed halfway, the
service uploads the same part again at its next start and the Center's row
is replaced. It blocks (files and HTTP): the service runs it in a thread.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from townhall.objectstore import ObjectStore
from townhall.recording.recorder import folder_for, part_names
from townhall.recording.sources import RecordingSources, UploadedPart

__all__ = ["LocalPart", "local_parts", "upload_parts"]

log = logging.getLogger("townhall.recording")

_MEDIA_TYPES: Final = {"webm": "video/webm", "mp4": "video/mp4"}
_MAX_SUMMARY: Final = 4096  # bytes: recording.json is a few hundred
_MEDIA_FILE: Final = re.compile(r"recording(?:-([1-9][0-9]{0,2}))?\.(mp4|webm)")


@dataclass(frozen=True, slots=True)
class LocalPart:
    """A part's files in the data folder (``chat`` and ``summary`` may be missing)."""

    number: int
    container: str
    media: Path
    chat: Path | None
    summary: Path | None

    @property
    def files(self) -> list[Path]:
        return [path for path in (self.media, self.chat, self.summary) if path is not None]


def local_parts(folder: Path) -> list[LocalPart]:
    """The parts in ``folder`` by number: those with a media file (``part_names``)."""
    try:
        present = {path.name for path in folder.iterdir()}
    except OSError:
        return []
    containers: dict[int, str] = {}
    for found in map(_MEDIA_FILE.fullmatch, sorted(present, reverse=True)):
        if found:  # WebM first when both are there, as the Center shows it
            containers.setdefault(int(found.group(1) or 1), found.group(2))
    parts = []
    for number, container in sorted(containers.items()):
        names = part_names(number, container)
        parts.append(
            LocalPart(
                number=number,
                container=container,
                media=folder / names.media,
                chat=folder / names.chat if names.chat in present else None,
                summary=folder / names.summary if names.summary in present else None,
            )
        )
    return parts


def upload_parts(
    store: ObjectStore, sources: RecordingSources, data: Path, event_id: int
) -> list[UploadedPart]:
    """Upload every part of the event left in the data folder; what was uploaded.

    Raises ``objectstore.StoreUnavailable`` or ``sources.SourceUnavailable`` when
    the store or the Center does not answer: the parts not yet done stay, for a
    later call."""
    folder = folder_for(data, event_id)
    uploaded = []
    for part in local_parts(folder):
        size = part.media.stat().st_size
        if size == 0:  # claimed, then the recorder died before its first byte
            log.info("event %d: part %d is empty; dropped", event_id, part.number)
        else:
            done = _upload(store, sources, event_id, part, size)
            uploaded.append(done)
            log.info(
                "event %d: part %d uploaded to the object store, %d bytes%s",
                event_id,
                part.number,
                size,
                "" if done.seconds is not None else " (its recorder was cut short)",
            )
        for path in part.files:
            path.unlink(missing_ok=True)
    try:
        folder.rmdir()
    except OSError:
        pass  # not empty (a file of someone else's) or already gone
    return uploaded


def _upload(
    store: ObjectStore, sources: RecordingSources, event_id: int, part: LocalPart, size: int
) -> UploadedPart:
    store.upload(part.media, store.key(event_id, part.media.name), _MEDIA_TYPES[part.container])
    if part.chat is not None:
        store.upload(part.chat, store.key(event_id, part.chat.name), "text/vtt")
    summary = _summary(part.summary)
    if part.summary is not None and summary:
        store.upload(part.summary, store.key(event_id, part.summary.name), "application/json")
    seconds = summary.get("seconds")
    done = UploadedPart(
        number=part.number,
        container=part.container,
        media_bytes=size,
        has_chat=part.chat is not None,
        seconds=float(seconds) if isinstance(seconds, int | float) else None,
        complete=summary.get("complete") is True,
    )
    sources.part_uploaded(event_id, done)
    return done


def _summary(path: Path | None) -> dict[str, object]:
    """The part's ``recording.json``, bounded; {} when missing or not what we wrote."""
    if path is None:
        return {}
    try:
        with path.open("rb") as file:
            raw = file.read(_MAX_SUMMARY + 1)
        data = json.loads(raw) if len(raw) <= _MAX_SUMMARY else None
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
