"""Routes of an event's recording: the recorder's ticket, playback with ranges, delete.

``GET /events/{id}/recording.webm`` and ``/events/{id}/chat.vtt`` serve the
files to whoever may see the event (Starlette's ``FileResponse`` answers
``Range`` with 206 and the bytes asked for, so a player seeks and a download
resumes); the event page plays them in a ``<video>`` element with the chat
as its captions track. The API gives the recording's facts, deletes it, and
gives its managers a recorder ticket (``townhall record --ticket``). The
rules are ``center.recordings``'; this module only maps HTTP to them.
"""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request, Response
from fastapi.responses import FileResponse
from pydantic import BaseModel

from townhall.center import events, recordings
from townhall.center.api import EventId, Me, ticket_response
from townhall.center.auth import context_of
from townhall.center.events import EventError
from townhall.center.pages.common import EventPost, SignedInUser
from townhall.center.tables import User
from townhall.store.conventions import now_utc
from townhall.web.deps import DB
from townhall.web.errors import ERRORS, redirect

router = APIRouter()


class RecordingOut(BaseModel):
    event_id: int
    url: str
    chat_url: str | None
    bytes: int
    seconds: float | None
    complete: bool


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
        url=f"/events/{event_id}/recording.webm",
        chat_url=f"/events/{event_id}/chat.vtt" if found.chat else None,
        bytes=found.size,
        seconds=found.seconds,
        complete=found.complete,
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


@router.get("/events/{event_id}/recording.webm", include_in_schema=False)
def recording_file(
    request: Request, session: DB, user: SignedInUser, event_id: EventId
) -> FileResponse:
    found = _visible_recording(request, session, event_id, user)
    return FileResponse(
        found.media,
        media_type="video/webm",
        filename=f"event-{event_id}.webm",
        content_disposition_type="inline",
        headers={"cache-control": "private, no-cache"},
    )


@router.get("/events/{event_id}/chat.vtt", include_in_schema=False)
def chat_file(request: Request, session: DB, user: SignedInUser, event_id: EventId) -> FileResponse:
    found = _visible_recording(request, session, event_id, user)
    if found.chat is None:
        raise EventError(404, "recording_not_found", f"event {event_id} has no recorded chat")
    return FileResponse(
        found.chat, media_type="text/vtt", headers={"cache-control": "private, no-cache"}
    )


@router.post("/events/{event_id}/recording/delete", include_in_schema=False)
def delete_from_page(request: Request, session: DB, user: EventPost, event_id: EventId) -> Response:
    recordings.delete(context_of(request).settings, session, event_id, user)
    return redirect(f"/events/{event_id}?done=recording-deleted")
