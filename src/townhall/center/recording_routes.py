"""Routes of an event's recording: the recorder's ticket, playback with ranges, delete.

``GET /events/{id}/recording.webm`` and ``/events/{id}/chat.vtt`` serve the
files of the first part, ``recording-{n}.webm`` and ``chat-{n}.vtt`` those of
part n (a recorder restarted mid-event, or the presenter's video codec
changed), ``.mp4`` instead of ``.webm`` for a part whose video is H.264 (the
other extension is a 404), to whoever may see the event
(Starlette's ``FileResponse`` answers ``Range`` with 206 and the bytes asked
for, so a player seeks and a download resumes); the event page plays each
part in a ``<video>`` element with its chat as the captions track. The API
gives the recording's facts (and each part's), deletes it, and gives its
managers a recorder ticket (``townhall record TICKET``). The rules are
``center.recordings``'; this module only maps HTTP to them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from townhall.center import events, recordings
from townhall.center.api import EventId, Me, ticket_response
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import EventPost, SignedInUser
from townhall.center.recordings import MAX_PARTS
from townhall.center.tables import User
from townhall.store.conventions import now_utc
from townhall.web.deps import DB
from townhall.web.errors import ERRORS, redirect

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
        chat_url=f"/events/{event_id}/chat{part.suffix}.vtt" if part.chat else None,
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
    found = recordings.find(context_of(request).settings, event_id)
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
        chat_url=f"/events/{event_id}/chat.vtt" if found.chat else None,
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


def _media(event_id: int, part: recordings.Part, container: str) -> FileResponse:
    if part.container != container:
        raise EventError(
            404, "recording_not_found", f"event {event_id} has no part {part.number} in {container}"
        )
    return FileResponse(
        part.media,
        media_type=part.media_type,
        filename=f"event-{event_id}{part.suffix}.{part.container}",
        content_disposition_type="inline",
        headers={"cache-control": "private, no-cache"},
    )


def _chat(event_id: int, part: recordings.Part) -> FileResponse:
    if part.chat is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recorded chat")
    return FileResponse(
        part.chat, media_type="text/vtt", headers={"cache-control": "private, no-cache"}
    )


@router.get("/events/{event_id}/recording.{container}", include_in_schema=False)
def recording_file(
    request: Request, session: DB, user: SignedInUser, event_id: EventId, container: Container
) -> FileResponse:
    return _media(event_id, _visible_part(request, session, event_id, user, 1), container)


@router.get("/events/{event_id}/recording-{number}.{container}", include_in_schema=False)
def recording_part_file(
    request: Request,
    session: DB,
    user: SignedInUser,
    event_id: EventId,
    number: PartNumber,
    container: Container,
) -> FileResponse:
    return _media(event_id, _visible_part(request, session, event_id, user, number), container)


@router.get("/events/{event_id}/chat.vtt", include_in_schema=False)
def chat_file(request: Request, session: DB, user: SignedInUser, event_id: EventId) -> FileResponse:
    return _chat(event_id, _visible_part(request, session, event_id, user, 1))


@router.get("/events/{event_id}/chat-{number}.vtt", include_in_schema=False)
def chat_part_file(
    request: Request, session: DB, user: SignedInUser, event_id: EventId, number: PartNumber
) -> FileResponse:
    return _chat(event_id, _visible_part(request, session, event_id, user, number))


@router.post("/events/{event_id}/recording/delete", include_in_schema=False)
def delete_from_page(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    recordings.delete(context_of(request).settings, session, event_id, user)
    return redirect(f"/events/{event_id}?done=recording-deleted")
