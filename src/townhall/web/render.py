"""Server-rendered pages in one frame: Jinja2 with autoescape, time filters, the error page.

Each component makes one ``Pages`` from its own ``templates/`` folder; its
templates extend this package's ``base.html`` (the site's frame: navigation,
who is signed in, the sign-out form, notices and errors) and are looked up
before the frame's, so a component can only add pages, not change the frame
by accident. Every rendered page carries the viewer, a CSRF token for its
forms (``csrf``) and the reader's time zone. The Content-Security-Policy
(``app``) forbids inline script and style, so templates carry none;
``static/townhall.js`` only shows times in the browser's zone and asks
before destructive buttons.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

import jinja2
from fastapi import Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from townhall.store.conventions import utc
from townhall.web.csrf import csrf_token, set_csrf_cookie
from townhall.web.shell import Person, Viewer, shell_of

HERE = Path(__file__).parent
ZONES = tuple(sorted(available_timezones()))
# Fixed English names: strftime's %a and %b follow the process locale.
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
SIGNED_IN_VIA = {
    "sso": "single sign-on at the proxy",
    "session": "password",
    "token": "API token",
    "anonymous": "not signed in",
}
_TITLES = {
    400: "Bad request",
    401: "Sign-in needed",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed here",
    409: "Conflict",
    413: "Too large",
    415: "Unsupported",
    422: "Please check your input",
}


def zoneinfo(name: str) -> ZoneInfo:
    """The zone called ``name``; UTC for an empty or unknown name."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def when(value: datetime | None, zone: str) -> str:
    """A stored naive-UTC time as the reader of ``zone`` says it: Tue 5 May 2031, 14:00 CEST."""
    if value is None:
        return ""
    moment = utc(value).astimezone(zoneinfo(zone))
    return (
        f"{_DAYS[moment.weekday()]} {moment.day} {_MONTHS[moment.month - 1]} {moment.year}, "
        f"{moment:%H:%M} {moment.tzname()}"
    )


def stamp(value: datetime | None, zone: str) -> str:
    if value is None:
        return ""
    return f"{utc(value).astimezone(zoneinfo(zone)):%Y-%m-%d %H:%M}"


def iso(value: datetime) -> str:
    return utc(value).isoformat().replace("+00:00", "Z")


def duration(minutes: int) -> str:
    hours, rest = divmod(minutes, 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


def static_files() -> StaticFiles:
    """The frame's stylesheet and script, served under ``/static``."""
    return StaticFiles(directory=HERE / "static")


def viewer_of(request: Request) -> Viewer[Person]:
    viewer = getattr(request.state, "viewer", None)
    return viewer if isinstance(viewer, Viewer) else Viewer(None, "anonymous")


def viewer_zone(request: Request, user: Person | None) -> str:
    default = shell_of(request).settings.center.default_timezone
    return (user.timezone if user is not None and user.timezone else "") or default or "UTC"


class Pages:
    """The templates of one component, in the site's frame."""

    def __init__(self, *folders: Path) -> None:
        environment = jinja2.Environment(
            loader=jinja2.ChoiceLoader(
                [jinja2.FileSystemLoader(folder) for folder in (*folders, HERE / "templates")]
            ),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates ship with the code and change only with it: without this, every
            # render stats each template file it uses (a tenth of a catalog page's time).
            auto_reload=False,
        )
        environment.filters.update(when=when, stamp=stamp, iso=iso, duration=duration)
        environment.globals.update(zones=ZONES, via_text=SIGNED_IN_VIA)
        self.templates = Jinja2Templates(env=environment)

    def render(
        self,
        request: Request,
        name: str,
        context: dict[str, Any] | None = None,
        *,
        status: int = 200,
        cache: str = "private, no-cache",
    ) -> Response:
        viewer = viewer_of(request)
        user = viewer.user
        page: dict[str, Any] = {
            "viewer": viewer,
            "me": user,
            "is_admin": user is not None and user.role == "admin",
            "csrf": csrf_token(request),
            "zone": viewer_zone(request, user),
            "zone_chosen": bool(user is not None and user.timezone),
            "notice": "",
            "errors": [],
        }
        page.update(context or {})
        response = self.templates.TemplateResponse(request, name, page, status_code=status)
        response.headers["cache-control"] = cache
        set_csrf_cookie(request, response)
        return response

    def fragment(self, name: str, **values: Any) -> str:
        """A piece of a page (no frame, no request): its HTML, escaped as a page's is, for a
        page to place with ``|safe``."""
        return self.templates.env.get_template(name).render(**values)

    def error_page(self, request: Request, status: int, code: str, message: str) -> Response:
        title = _TITLES.get(status, "Something went wrong" if status >= 500 else "Error")
        return self.render(
            request,
            "error.html",
            {"title": title, "code": code, "message": message, "status": status},
            status=status,
        )
