"""Request dependencies every component's routes share: database, viewer, forms, ids.

``DB`` is a SQLAlchemy session for the request. ``Who`` is whoever asks a
page (possibly nobody); ``SignedIn`` is a dependency that answers the signed-in
user or refuses, and, for form posts, checks the CSRF token first
(``csrf``), so a route declares in its signature what it needs instead of
repeating a preamble. ``ApiViewer`` is the JSON API's equivalent: a 401 for
nobody, and a cookie- or proxy-authenticated write must be JSON (a cross-site
form cannot send that). ``ItemId`` bounds ids in paths to what the
database's integer columns hold.

The hottest reads (the catalog, an event) run their whole work at once
instead (``in_one_hop``), asking who is there with the same rules as the
dependencies (``api_viewer``, ``signed_in``): FastAPI's solving of a sync
viewer dependency and a second hop cost 0.15-0.2 ms a request, about a tenth
of such a read (bench/README.md, sixth pass). On SQLite that work runs on the
event loop itself, its writes refused there and the work then done again on
a thread; on a database server, on one thread-pool hop (ninth pass). Their
query strings are read as one model (``query_of``), documented with
``query_parameters``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Annotated, TypeVar

from anyio import to_thread
from fastapi import Depends, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from townhall.store import WriteOnLoop, refused_on_loop
from townhall.web.csrf import MAX_TOKEN, check_csrf
from townhall.web.errors import SignInNeeded, WebError
from townhall.web.shell import Person, Viewer, shell_of

MAX_ID = 2**31 - 1
ItemId = Annotated[int, Path(ge=1, le=MAX_ID)]
# The name of a short confirmation after a redirect (``?done=created``).
Done = Annotated[str, Query(max_length=20)]


async def db_session(request: Request) -> AsyncIterator[Session]:
    # An async dependency on purpose: a sync one costs two thread-pool hops per
    # request (enter and exit). Opening a Session does no IO; closing one only
    # hands its connection back to the pool.
    with shell_of(request).sessions() as session:
        yield session


DB = Annotated[Session, Depends(db_session)]

Answer = TypeVar("Answer")
Params = TypeVar("Params", bound=BaseModel)


async def in_one_hop(request: Request, work: Callable[[Session], Answer]) -> Answer:
    """``work`` with a session of its own, on one thread-pool hop at most: for an
    ``async`` route that reads and asks who is there itself (``api_viewer``,
    ``signed_in``) instead of by a dependency. Errors it raises reach the error
    handlers as a sync route's do.

    On SQLite (``WebShell.loop_read_sessions``) it runs on the event loop, where
    SQLite refuses any write (``store.refused_on_loop``) before it takes a lock;
    the work is then done again, whole, on a thread. The few writes of such a
    read are the sign-in's (a token's last use once a minute, an account the
    proxy vouches for), which say so first (``store.will_write``). Elsewhere
    the session is a read one (``WebShell.read_sessions``): on PostgreSQL, no
    transaction."""
    shell = shell_of(request)
    if shell.loop_read_sessions is not None:
        try:
            with shell.loop_read_sessions() as session:
                return work(session)
        except (WriteOnLoop, DBAPIError) as error:
            if not refused_on_loop(error):
                raise
            # Rolled back as the session closed: nothing was written. Now on a thread.

    def run() -> Answer:
        with shell.read_sessions() as session:
            return work(session)

    return await to_thread.run_sync(run)


def query_of(request: Request, model: type[Params]) -> Params:
    """The request's query string as ``model``, whose fields are the parameters (named by
    their aliases), for a hot read: FastAPI's own handling of parameters declared one by
    one cost the catalog's seven 47 us a request, the model's validation 8 (bench/
    README.md, tenth pass). The last of a repeated parameter counts, as with FastAPI; a
    refusal is FastAPI's own (``RequestValidationError``, each ``loc`` under "query"),
    answered as any other. Document the parameters with ``query_parameters``."""
    try:
        return model.model_validate(dict(request.query_params))
    except ValidationError as error:
        problems = error.errors(include_url=False)
        raise RequestValidationError(
            [{**problem, "loc": ("query", *problem["loc"])} for problem in problems]
        ) from None


def query_parameters(model: type[BaseModel]) -> dict[str, object]:
    """A route's ``openapi_extra`` listing ``model``'s fields as its query parameters, as
    FastAPI lists the parameters it reads itself (for ``query_of``)."""
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", ()))
    return {
        "parameters": [
            {"name": name, "in": "query", "required": name in required, "schema": field}
            for name, field in schema["properties"].items()
        ]
    }


def page_viewer(request: Request, session: DB) -> Viewer[Person]:
    """Whoever asks a page; kept on the request for rendering and CSRF."""
    viewer = shell_of(request).identify(request, session)
    request.state.viewer = viewer
    return viewer


Who = Annotated[Viewer[Person], Depends(page_viewer)]


async def checked_form(request: Request, viewer: Who) -> Viewer[Person]:
    """A form post from our own pages (its CSRF token holds for this sign-in)."""
    form = await request.form()
    submitted = form.get("csrf", "")
    if not isinstance(submitted, str) or len(submitted) > MAX_TOKEN:
        submitted = ""
    check_csrf(request, submitted, viewer)
    return viewer


CheckedForm = Annotated[Viewer[Person], Depends(checked_form)]


class SignedIn:
    """A dependency answering the signed-in user of a page, or refusing.

    ``form``: a post, whose CSRF token is checked before anything else.
    ``back``: where to return after signing in, a pattern of the path's
    parameters (``"/events/{event_id}"``); by default the page itself.
    ``admin``: administrators only, and the message the others get.
    """

    def __init__(
        self, *, form: bool = False, back: str | None = None, admin: str | None = None
    ) -> None:
        self.form = form
        self.back = back
        self.admin = admin

    async def __call__(self, request: Request, viewer: Who) -> Person:
        if self.form:
            await checked_form(request, viewer)
        return _person_or_refusal(request, viewer, self.back, self.admin)


def _person_or_refusal(
    request: Request, viewer: Viewer[Person], back: str | None, admin: str | None
) -> Person:
    if viewer.user is None:
        raise SignInNeeded(back.format(**request.path_params) if back is not None else None)
    if admin is not None and viewer.user.role != "admin":
        raise WebError(403, "not_admin", admin)
    return viewer.user


def signed_in(request: Request, session: Session) -> Person:
    """``SignedIn()``'s answer for a page that runs ``in_one_hop``: the signed-in user,
    or off to sign in and back to this page."""
    return _person_or_refusal(request, page_viewer(request, session), None, None)


def check_api_write(request: Request, viewer: Viewer[Person]) -> None:
    """Cookie- or proxy-authenticated API writes must be JSON (a cross-site form cannot be)."""
    if viewer.via in ("session", "sso") and request.method in ("POST", "PUT", "PATCH"):
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise WebError(415, "json_required", "send the body as application/json")


def api_viewer(request: Request, session: DB) -> Viewer[Person]:
    """A signed-in caller of the JSON API (SSO, token or session), or 401."""
    viewer = shell_of(request).identify(request, session)
    if viewer.user is None:
        raise WebError(401, "not_signed_in", "sign in, or send Authorization: Bearer <token>")
    check_api_write(request, viewer)
    request.state.viewer = viewer
    return viewer


ApiViewer = Annotated[Viewer[Person], Depends(api_viewer)]
