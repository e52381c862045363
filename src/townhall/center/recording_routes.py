"""Routes of an event's recording: the recorder's ticket, playback with ranges, delete.

``GET /events/{id}/recording.webm`` and ``/events/{id}/chat.vtt`` serve the
files of the first part, ``recording-{n}.webm`` and ``chat-{n}.vtt`` those of
part n (a recorder restarted mid-event, or the presenter's video codec
changed), ``.mp4`` instead of ``.webm`` for a part whose video is H.264 (the
other extension is a 404), to whoever may see the event
(Starlette's ``FileResponse`` answers ``Range`` with 206 and the bytes asked
for, so a player seeks and a download resumes; a part in the object store is
streamed from it with the viewer's one range passed through, so viewers never
reach the store); the event page plays each
part in a ``<video>`` element with its chat as the captions track. The API
gives the recording's facts (and each part's), deletes it, and gives its
managers a recorder ticket (``townhall record TICKET``). The rules are
``center.recordings``'; this module only maps HTTP to them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse, StreamingResponse
from pydantic import BaseModel

from townhall.center import events, recordings
from townhall.center.api import EventId, Me, ticket_response
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import EventPost, SignedInUser
from townhall.center.recordings import MAX_PARTS
from townhall.center.tables import User
from townhall.objectstore import ObjectMissing, RangeNotSatisfiable, StoreUnavailable, single_range
from townhall.store.conventions import now_utc
from townhall.web.deps import DB
from townhall.web.errors import ERRORS, redirect

log = logging.getLogger("townhall.center")
router = APIRouter()
# Part 1 has its own routes (recording.webm); a later part is 2 to MAX_PARTS, else 422.
PartNumber = Annotated[int, Path(ge=2, le=MAX_PARTS)]
Container = Literal["webm", "mp4"]  # a part's file is one or the other (recordings.Part)


class PartOut(BaseModel):
    number: int
    url: str
    chat_url: str | None
    bytes: int
    seconds: float | None  # None: its recorder did not finish
    complete: bool


class RecordingOut(BaseModel):
    """The recording's totals (``url`` and ``chat_url``: its first part) and each part."""

    event_id: int
    url: str
    chat_url: str | None
    bytes: int
    seconds: float | None
    complete: bool
    parts: list[PartOut]


def _part_out(event_id: int, part: recordings.Part) -> PartOut:
    return PartOut(
        number=part.number,
        url=_media_url(event_id, part),
        chat_url=f"/events/{event_id}/chat{part.suffix}.vtt" if part.has_chat else None,
        bytes=part.size,
        seconds=part.seconds,
        complete=part.complete,
    )


def _media_url(event_id: int, part: recordings.Part) -> str:
    return f"/events/{event_id}/recording{part.suffix}.{part.container}"


def _visible_recording(
    request: Request, session: DB, event_id: int, user: User
) -> recordings.Recording:
    events.get_visible(session, event_id, user)  # 404 for whoever may not see the event
    found = recordings.find(context_of(request).settings, session, event_id)
    if found is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recording")
    return found


@router.get(
    "/api/v1/events/{event_id}/recording",
    response_model=RecordingOut,
    responses=ERRORS,
    tags=["api"],
)
def recording_info(request: Request, session: DB, user: Me, event_id: EventId) -> RecordingOut:
    found = _visible_recording(request, session, event_id, user)
    return RecordingOut(
        event_id=event_id,
        url=_media_url(event_id, found.parts[0]),
        chat_url=f"/events/{event_id}/chat.vtt" if found.has_chat else None,
        bytes=found.size,
        seconds=found.seconds,
        complete=found.complete,
        parts=[_part_out(event_id, part) for part in found.parts],
    )


@router.delete(
    "/api/v1/events/{event_id}/recording", status_code=204, responses=ERRORS, tags=["api"]
)
def delete_recording(request: Request, session: DB, user: Me, event_id: EventId) -> Response:
    recordings.delete(context_of(request).settings, session, event_id, user)
    return Response(status_code=204)


@router.post(
    "/api/v1/events/{event_id}/recorder-ticket",
    response_class=Response,
    responses=ERRORS,
    tags=["api"],
)
def recorder_ticket(request: Request, session: DB, user: Me, event_id: EventId) -> Response:
    event = events.get_visible(session, event_id, user)
    ctx = context_of(request)
    now: datetime = now_utc()
    data = recordings.issue_recorder_ticket(
        session, ctx.settings, event, user, trees=ctx.trees, now=now
    )
    session.commit()
    return ticket_response(data, event)


def _visible_part(
    request: Request, session: DB, event_id: int, user: User, number: int
) -> recordings.Part:
    part = _visible_recording(request, session, event_id, user).part(number)
    if part is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no part {number}")
    return part


def _media(request: Request, event_id: int, part: recordings.Part, container: str) -> Response:
    if part.container != container:
        raise EventError(
            404, "recording_not_found", f"event {event_id} has no part {part.number} in {container}"
        )
    return _file(
        request,
        event_id,
        part,
        part.media_name,
        part.media_type,
        download=f"event-{event_id}{part.suffix}.{part.container}",
    )


def _chat(request: Request, event_id: int, part: recordings.Part) -> Response:
    if not part.has_chat:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recorded chat")
    return _file(request, event_id, part, part.chat_name, "text/vtt")


def _file(
    request: Request,
    event_id: int,
    part: recordings.Part,
    name: str,
    media_type: str,
    *,
    download: str | None = None,
) -> Response:
    """The file from the data folder, or streamed from the object store; ranges either way."""
    headers = {"cache-control": "private, no-cache"}
    if part.folder is not None:
        return FileResponse(
            part.folder / name,
            media_type=media_type,
            filename=download,
            content_disposition_type="inline",
            headers=headers,
        )
    store = recordings.object_store(context_of(request).settings.storage)
    try:
        opened = store.open(store.key(event_id, name), single_range(request.headers.get("range")))
    except ObjectMissing as error:
        raise EventError(404, "recording_not_found", f"event {event_id} has no {name}") from error
    except RangeNotSatisfiable as error:
        size = "*" if error.size is None else str(error.size)
        return Response(status_code=416, headers={**headers, "content-range": f"bytes */{size}"})
    except StoreUnavailable as error:
        log.warning("event %d: %s", event_id, error)
        raise EventError(
            503, "store_unavailable", "the recording store does not answer; try again later"
        ) from error
    headers |= {"accept-ranges": "bytes", "content-length": str(opened.length)}
    if opened.content_range:
        headers["content-range"] = opened.content_range
    if opened.etag:
        headers["etag"] = opened.etag
    if opened.last_modified:
        headers["last-modified"] = opened.last_modified
    if download:
        headers["content-disposition"] = f'inline; filename="{download}"'
    return StreamingResponse(
        opened.chunks(), status_code=opened.status, media_type=media_type, headers=headers
    )


@router.get("/events/{event_id}/recording.{container}", include_in_schema=False)
def recording_file(
    request: Request, session: DB, user: SignedInUser, event_id: EventId, container: Container
) -> Response:
    return _media(request, event_id, _visible_part(request, session, event_id, user, 1), container)


@router.get("/events/{event_id}/recording-{number}.{container}", include_in_schema=False)
def recording_part_file(
    request: Request,
    session: DB,
    user: SignedInUser,
    event_id: EventId,
    number: PartNumber,
    container: Container,
) -> Response:
    return _media(
        request, event_id, _visible_part(request, session, event_id, user, number), container
    )


@router.get("/events/{event_id}/chat.vtt", include_in_schema=False)
def chat_file(request: Request, session: DB, user: SignedInUser, event_id: EventId) -> Response:
    return _chat(request, event_id, _visible_part(request, session, event_id, user, 1))


@router.get("/events/{event_id}/chat-{number}.vtt", include_in_schema=False)
def chat_part_file(
    request: Request, session: DB, user: SignedInUser, event_id: EventId, number: PartNumber
) -> Response:
    return _chat(request, event_id, _visible_part(request, session, event_id, user, number))


@router.post("/events/{event_id}/recording/delete", include_in_schema=False)
def delete_from_page(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    recordings.delete(context_of(request).settings, session, event_id, user)
    return redirect(f"/events/{event_id}?done=recording-deleted")
