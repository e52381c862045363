"""HTTP routes of the browser participant: the room page and its static modules.

Files are served from ``static/`` only, by a name checked against a strict
pattern (no ``..``, no hidden files), with a MIME type chosen by extension
from a short list: a module served as ``text/plain`` would not run, and
anything unknown is a 404. Every answer carries ``CONTENT_SECURITY_POLICY``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, Response

STATIC_ROOT: Final = Path(__file__).parent / "static"

# Scripts, styles, workers and worklets from the Center only; WebSocket to any
# wss: live server (the ticket names them at run time); media from capture only.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self' wss:; media-src 'self' blob: mediastream:; worker-src 'self'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
_TYPES: Final = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
_NAME: Final = re.compile(
    r"\A(?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}/){0,4}[A-Za-z0-9_][A-Za-z0-9_.-]{0,80}\Z"
)
_HEADERS: Final = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "cache-control": "no-cache",
    "permissions-policy": "camera=(self), microphone=(self), display-capture=(self)",
}

router = APIRouter(include_in_schema=False)


@router.get("/events/{event_id}/room")
def room_page(event_id: int) -> Response:
    """The room; the page reads the event id from its own URL."""
    if not 1 <= event_id <= 2**31:
        raise HTTPException(404, "no such event")
    return FileResponse(STATIC_ROOT / "room.html", media_type=_TYPES[".html"], headers=_HEADERS)


@router.get("/browser/static/{name:path}")
def static_file(name: str) -> Response:
    path = STATIC_ROOT / name
    media_type = _TYPES.get(path.suffix)
    if not _NAME.fullmatch(name) or ".." in name or media_type is None or not path.is_file():
        raise HTTPException(404, "no such file")
    return FileResponse(path, media_type=media_type, headers=_HEADERS)
