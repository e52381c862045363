"""What ``townhall join`` is given, turned into the bytes of a join ticket.

Three forms, as a user meets them: a ticket file the browser saved
(``event-7.townhall``); a ``townhall:`` link, which the desktop entry installed
by ``townhall client install-handler`` hands over (``townhall://host/events/7``
means ``https://host/events/7``, and ``townhall:https://host/events/7`` is the
same); and an https link to an event's page (``https://host[/prefix]/events/7``).
For a link, the ticket is asked of the Center's API, ``POST
/api/v1/events/{id}/ticket``, with the user's API token or proxy session from
``Store`` (signing in at the proxy first if it asks), exactly as the browser's
Join button does.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from townhall.desktop.session import (
    CenterSession,
    PasswordSource,
    error_text,
    terminal_password,
)
from townhall.desktop.store import DesktopError, Store

TICKET_MEDIA_TYPE = "application/vnd.townhall.ticket"
MAX_TICKET_BYTES = 1 << 20
_EVENT_PATH = re.compile(r"^(?P<prefix>.*?)/events/(?P<id>[1-9][0-9]{0,9})(?:/[A-Za-z0-9_./-]*)?$")


def link_target(link: str) -> tuple[str, int]:
    """(Center base URL, event id) of a ``townhall:`` or https link to an event."""
    text = link.strip()
    if text.lower().startswith("townhall:"):
        rest = text[len("townhall:") :]
        if rest.startswith("//"):
            text = "https:" + rest
        elif rest.lower().startswith(("https://", "http://")):
            text = rest
        else:
            text = unquote(rest)
            if not text.lower().startswith(("https://", "http://")):
                raise DesktopError(f"not a townhall: link to an event: {link!r}")
    parts = urlsplit(text)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise DesktopError(f"not a link to an event: {link!r}")
    match = _EVENT_PATH.match(parts.path)
    if match is None:
        raise DesktopError(
            f"{link!r} does not name an event (…/events/<id>); open it in a browser "
            "and use the event page's Join button"
        )
    base = urlunsplit((parts.scheme, parts.netloc, match.group("prefix"), "", ""))
    return base, int(match.group("id"))


def fetch_ticket(
    base: str,
    event_id: int,
    *,
    store: Store | None = None,
    password: PasswordSource = terminal_password,
    token: str = "",
    username: str = "",
    ca_file: str = "",
) -> bytes:
    """Ask the Center for a join ticket for this user, through its proxy if it has one."""
    with CenterSession(
        base, store=store, token=token, username=username, ca_file=ca_file, password=password
    ) as center:
        response = center.request(
            "POST", f"/api/v1/events/{event_id}/ticket", json={}, accept=TICKET_MEDIA_TYPE
        )
        if response.status_code >= 400:
            raise DesktopError(f"no ticket for event {event_id}: {error_text(response)}")
        media = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != TICKET_MEDIA_TYPE:
            raise DesktopError(f"{center.url} answered {media or 'nothing'}, not a join ticket")
        if len(response.content) > MAX_TICKET_BYTES:
            raise DesktopError("the ticket is too large")
        return response.content


def resolve_join_target(
    arg: str,
    *,
    store: Store | None = None,
    password: PasswordSource = terminal_password,
    token: str = "",
    username: str = "",
    ca_file: str = "",
) -> bytes:
    """The ticket bytes for a file path, a ``townhall:`` link or an https link to an event."""
    lowered = arg.strip().lower()
    if lowered.startswith(("townhall:", "https://", "http://")):
        base, event_id = link_target(arg)
        return fetch_ticket(
            base,
            event_id,
            store=store,
            password=password,
            token=token,
            username=username,
            ca_file=ca_file,
        )
    path = Path(arg).expanduser()
    try:
        with path.open("rb") as file:
            data = file.read(MAX_TICKET_BYTES + 1)
    except OSError as error:
        raise DesktopError(f"cannot read the ticket {arg}: {error.strerror or error}") from error
    if len(data) > MAX_TICKET_BYTES:
        raise DesktopError(f"{arg} is too large to be a join ticket")
    return data
