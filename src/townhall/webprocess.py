"""The web process's composition root: the Center, the Manager and the browser room, one shell.

``create_app(settings)`` opens the database, builds the Center's context and
the shell (``townhall.web``) with the Center's ``identify`` and secret, and
hangs both components on it; ``app_from_environment`` is the factory
``uvicorn --workers`` calls in each process (``townhall center``). Only this
module (with ``cli`` and ``onebox``) knows which components share a process;
the Center and the Manager never import each other.
"""

from __future__ import annotations

import os
from pathlib import Path

from fastapi import FastAPI

from townhall import browser
from townhall.center import app as center_app
from townhall.center.auth import identify
from townhall.config import Settings, load_settings
from townhall.inprocess import ManagerTrees
from townhall.manager import app as manager_app
from townhall.store import (
    make_engine,
    make_loop_read_session_factory,
    make_read_session_factory,
    make_session_factory,
)
from townhall.web import app as web_app
from townhall.web.app import Component
from townhall.web.shell import WebShell


def create_app(settings: Settings, *, run_workers: bool = True) -> FastAPI:
    engine = make_engine(settings.database_url)
    sessions = make_session_factory(engine)
    center = center_app.open_context(settings, engine, sessions, ManagerTrees())
    shell = WebShell(
        settings=settings,
        engine=engine,
        sessions=sessions,
        read_sessions=make_read_session_factory(engine, settings.web_threads),
        loop_read_sessions=make_loop_read_session_factory(engine),
        identify=identify,
        sign=center.secret.sign,
    )
    return web_app.create_app(
        shell,
        [
            center_app.component(center, run_workers=run_workers),
            manager_app.component(),
            Component(name="browser", routers=(browser.router,)),
        ],
        title="Townhall Center API",
        max_body_bytes=settings.center.max_body_bytes,
    )


def app_from_environment() -> FastAPI:
    """The factory ``uvicorn --workers`` calls in each process (see ``townhall center``)."""
    config = os.environ.get("TOWNHALL_CONFIG")
    return create_app(load_settings(None, Path(config) if config else None))
