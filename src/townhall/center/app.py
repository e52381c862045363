"""The Center's ASGI application: routes, error answers, limits, the mail worker.

``create_app(settings)`` builds everything from frozen settings, with no
module-level state, so tests build as many independent Centers as they need.
The same process serves the Manager's routers (``/manager``, its API under
``/manager/api/v1``). Errors come out as JSON under ``/api`` and
``/manager/api`` and as pages elsewhere; request bodies are bounded before
anything reads them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall import browser
from townhall.center import api, pages
from townhall.center.accounts import AccountError, CenterSecret
from townhall.center.auth import AuthError
from townhall.center.context import CenterContext
from townhall.center.events import EventError
from townhall.center.mailer import MailWorker
from townhall.center.sso import SsoVerifier
from townhall.config import Settings, load_settings
from townhall.manager import api as manager_api
from townhall.manager import pages as manager_pages
from townhall.manager.registry import ManagerError
from townhall.store import make_engine, make_session_factory

log = logging.getLogger("townhall.center")

SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; form-action 'self'",
    ),
]


class Limits:
    """Bound request bodies (declared or streamed) and add the security headers."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.max_body_bytes:
                    await _too_large(send, self.max_body_bytes)
                    return
        received = 0
        refused = False

        async def bounded_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    # Answer now and tell the application the client is gone: raising
                    # here would reach the body parser and come out as a 400.
                    refused = True
                    await _too_large(send, self.max_body_bytes)
                    return {"type": "http.disconnect"}
            return message

        async def send_with_headers(message: Message) -> None:
            if refused:
                return
            if message["type"] == "http.response.start":
                # A route that sets its own policy (the browser room's) keeps it.
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(n, v) for n, v in SECURITY_HEADERS if n not in present]
                message["headers"] = headers
            await send(message)

        await self.app(scope, bounded_receive, send_with_headers)


async def _too_large(send: Send, limit: int) -> None:
    body = (
        b'{"error":{"code":"body_too_large","message":"request bodies are limited to '
        + str(limit).encode()
        + b' bytes"}}'
    )
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _wants_json(request: Request) -> bool:
    path = request.url.path
    return path.startswith(("/api/", "/manager/api/")) or path == "/healthz"


def error_response(request: Request, status: int, code: str, message: str) -> Response:
    if _wants_json(request):
        return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    return pages.error_page(request, status, code, message)


def _validation_message(error: RequestValidationError) -> tuple[str, str]:
    problems = []
    for item in error.errors()[:10]:
        if item.get("type") == "json_invalid":
            return "invalid_json", "the body is not valid JSON"
        location = ".".join(str(part) for part in item.get("loc", ()) if part != "body")
        problems.append(f"{location or 'body'}: {item.get('msg', 'invalid')}")
    return "invalid_input", "; ".join(problems) or "invalid input"


def app_from_environment() -> FastAPI:
    """The factory ``uvicorn --workers`` calls in each process (see ``townhall center``)."""
    config = os.environ.get("TOWNHALL_CONFIG")
    return create_app(load_settings(None, Path(config) if config else None))


def create_app(settings: Settings, *, run_workers: bool = True) -> FastAPI:
    engine = make_engine(settings.database_url)
    ctx = CenterContext(
        settings=settings,
        engine=engine,
        sessions=make_session_factory(engine),
        sso=SsoVerifier(settings.center.sso),
        secret=CenterSecret.load_or_create(settings.data / "secret.key"),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        tasks = []
        if run_workers:
            worker = MailWorker(ctx.sessions, settings.center.mail, settings.outbox_dir)
            tasks.append(asyncio.create_task(worker.run(stop)))
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            engine.dispose()

    app = FastAPI(
        title="Townhall Center API",
        version="1",
        openapi_url="/api/v1/openapi.json",
        docs_url="/api/v1/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.center = ctx

    @app.exception_handler(AuthError)
    async def _auth_error(request: Request, error: AuthError) -> Response:
        return error_response(request, error.status, error.code, error.message)

    @app.exception_handler(EventError)
    async def _event_error(request: Request, error: EventError) -> Response:
        return error_response(request, error.status, error.code, error.message)

    @app.exception_handler(ManagerError)
    async def _manager_error(request: Request, error: ManagerError) -> Response:
        return error_response(request, error.status, error.code, error.message)

    @app.exception_handler(AccountError)
    async def _account_error(request: Request, error: AccountError) -> Response:
        return error_response(request, 422, error.code, error.message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> Response:
        code, message = _validation_message(error)
        return error_response(request, 400 if code == "invalid_json" else 422, code, message)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(request, error.status_code, code, str(error.detail))

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any database failure means "not healthy"
            log.warning("health check failed: %s", error)
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(browser.router)
    app.include_router(manager_api.router)
    app.include_router(manager_pages.router)
    app.mount("/static", pages.static_files(), name="static")
    app.add_middleware(Limits, max_body_bytes=settings.center.max_body_bytes)
    return app
