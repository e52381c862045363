"""The web application: one ASGI app that hangs each component's routers on the shell.

``create_app(shell, components)`` builds it from a ``WebShell`` and a list of
``Component``s (their routers, static folders, state and background
workers), with no module-level state, so tests build as many independent
applications as they need. It installs the one error handler
(``errors``), bounds request bodies before anything reads them, adds the
security headers, counts and times requests by route (``metrics``), serves
``/static`` (the frame's files), ``/healthz`` and ``/metrics``; while it serves,
the process's thread pool and garbage collector are set for many short requests.
Which components run together is the composition root's choice
(``townhall.webprocess``); this module imports none of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

from anyio import to_thread
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.registry import Collector
from sqlalchemy import Engine, text
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from townhall.metrics import token_matches
from townhall.web.errors import install_error_handlers
from townhall.web.metrics import RequestMetrics, WebMetrics
from townhall.web.render import Pages, static_files
from townhall.web.shell import WebShell

log = logging.getLogger("townhall.web")

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


Worker = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

# The cyclic garbage collector's thresholds in a serving web process (CPython's default:
# 700, 10, 10). Under load many requests' objects are alive at once, so at the default
# a young pass ran every score of requests and one over the whole heap every few seconds,
# holding every request of the process meanwhile: counted with gc.callbacks during
# bench/center.py, 12-13 full passes per process of up to 96-104 ms each, the p99 of
# the event page (96-134 ms). At these: 3 young passes and no full one, the event
# page's p99 39-48 ms (bench/README.md, sixth pass). Cycles are still collected: a
# young pass runs once 10,000 more objects are alive than were.
GC_THRESHOLDS = (10_000, 50, 100)


@dataclass(frozen=True, slots=True)
class Component:
    """What one component hangs on the web application.

    ``name``: its state is ``app.state.<name>``. ``json_prefixes``: paths
    whose errors are answered in JSON. ``workers``: coroutines run for the
    application's life, told to stop by the event they are given.
    """

    name: str
    routers: Sequence[APIRouter]
    json_prefixes: tuple[str, ...] = ()
    state: Any = None
    workers: Sequence[Worker] = field(default_factory=tuple)
    # Read at each scrape of /metrics (web/metrics.py).
    collectors: Sequence[Collector] = field(default_factory=tuple)


def create_app(
    shell: WebShell,
    components: Sequence[Component],
    *,
    title: str,
    openapi_prefix: str = "/api/v1",
    max_body_bytes: int,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Sync routes and dependencies run on anyio's thread pool, whose size is per event
        # loop; its default of 40 lets 40 threads take turns at the GIL (center.threads).
        to_thread.current_default_thread_limiter().total_tokens = shell.settings.web_threads
        gc.set_threshold(*GC_THRESHOLDS)
        stop = asyncio.Event()
        tasks = [asyncio.create_task(work(stop)) for c in components for work in c.workers]
        try:
            yield
        finally:
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.wait_for(task, timeout=10)
            shell.engine.dispose()
            for sessions in (shell.read_sessions, shell.loop_read_sessions):
                # Their own pools (store.make_*read_session_factory), where they have one.
                bind = sessions.kw.get("bind") if sessions is not None else None
                if isinstance(bind, Engine) and bind is not shell.engine:
                    bind.dispose()

    app = FastAPI(
        title=title,
        version="1",
        openapi_url=f"{openapi_prefix}/openapi.json",
        docs_url=f"{openapi_prefix}/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.web = shell
    metrics = WebMetrics()
    app.state.metrics = metrics
    for component in components:
        for collector in component.collectors:
            metrics.add_collector(collector)
    for component in components:
        setattr(app.state, component.name, component.state)
    json_prefixes = tuple(prefix for c in components for prefix in c.json_prefixes)
    install_error_handlers(app, json_prefixes, Pages().error_page)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        try:
            with shell.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception as error:  # noqa: BLE001 - any database failure means "not healthy"
            log.warning("health check failed: %s", error)
            return JSONResponse({"status": "database unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", include_in_schema=False)
    def scrape(request: Request) -> Response:
        token = shell.settings.center.metrics_token
        if not token:
            return PlainTextResponse("metrics are off: set center.metrics_token\n", 404)
        if not token_matches(request.headers.get("authorization"), token):
            return PlainTextResponse(
                "a bearer token is needed\n", 401, headers={"WWW-Authenticate": "Bearer"}
            )
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    for component in components:
        for router in component.routers:
            app.include_router(router)
    app.mount("/static", static_files(), name="static")
    app.add_middleware(Limits, max_body_bytes=max_body_bytes)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app
