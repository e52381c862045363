"""One HTTP error family for every component: a status, a stable code, a message.

Domain modules raise ``WebError`` (or a subclass of their own, such as the
Center's ``EventError`` or the Manager's ``ManagerError``, which only name
where the refusal comes from); ``install_error_handlers`` gives every
application one handler that answers ``{"error": {"code", "message"}}`` under
the JSON prefixes and an error page elsewhere. The ``code`` is part of the
API contract (``docs/api.md``): clients match on it, never on the message.
``SignInNeeded`` is the one member that is not an error page: a page asked
by someone not signed in redirects to the sign-in form.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException


class WebError(Exception):
    """A request refused; ``status`` says whose fault (4xx: the sender's), ``code`` is stable."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class SignInNeeded(WebError):
    """A page for signed-in users only: a redirect to the sign-in form, then ``back``.

    ``back`` None: the page asked (its path and query).
    """

    def __init__(self, back: str | None = None) -> None:
        super().__init__(401, "not_signed_in", "sign in to see this page")
        self.back = back


class ErrorBody(BaseModel):
    code: str
    message: str


class ErrorOut(BaseModel):
    error: ErrorBody


# The error answers every JSON route documents in OpenAPI.
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 413, 415, 422, 429)
}

ErrorPage = Callable[[Request, int, str, str], Response]


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def safe_next(value: str | None) -> str:
    """Only same-site relative paths: ``/x``, never ``//host``, ``/\\host`` or a scheme."""
    if not value or len(value) > 2000 or not value.startswith("/"):
        return "/events"
    if value.startswith(("//", "/\\")) or "\\" in value:
        return "/events"
    if any(ord(c) < 33 or ord(c) == 127 for c in value):
        return "/events"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/events"
    return value


def to_login(request: Request, back: str | None = None) -> RedirectResponse:
    if back is None:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect("/login?" + urlencode({"next": safe_next(back)}, safe="/"))


def validation_message(error: RequestValidationError) -> tuple[str, str]:
    problems = []
    for item in error.errors()[:10]:
        if item.get("type") == "json_invalid":
            return "invalid_json", "the body is not valid JSON"
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{location or 'body'}: {item.get('msg', 'invalid')}")
    return "invalid_input", "; ".join(problems) or "invalid input"


def install_error_handlers(
    app: FastAPI, json_prefixes: tuple[str, ...], error_page: ErrorPage
) -> None:
    """Answer every refusal the same way: JSON under ``json_prefixes``, a page elsewhere."""

    def error_response(request: Request, status: int, code: str, message: str) -> Response:
        path = request.url.path
        if path.startswith(json_prefixes) or path == "/healthz":
            return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
        return error_page(request, status, code, message)

    @app.exception_handler(WebError)
    async def _web_error(request: Request, error: WebError) -> Response:
        if isinstance(error, SignInNeeded) and not request.url.path.startswith(json_prefixes):
            return to_login(request, error.back)
        return error_response(request, error.status, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        code, message = validation_message(error)
        return error_response(request, 400 if code == "invalid_json" else 422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(request, error.status_code, code, str(error.detail))
