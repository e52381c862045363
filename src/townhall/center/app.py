"""The Center as a web component: its routers, its context, its mail worker.

``component(ctx)`` is what the composition root (``townhall.webprocess``)
hangs on the web shell: the REST API (``api``, JSON errors under ``/api``),
the portal (``pages``, one router per area) and the background mail worker. ``open_context``
builds the Center's ``CenterContext`` from frozen settings, with no
module-level state, so tests build as many independent Centers as they need.
The Center knows nothing of the other components it runs beside.
"""

from __future__ import annotations

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from townhall.center import access_routes, api, attendance_routes, live, polls, recording_routes
from townhall.center.accounts import CenterSecret
from townhall.center.context import CenterContext
from townhall.center.mailer import MailWorker
from townhall.center.metrics import MailQueueCollector
from townhall.center.pages import (
    account,
    admin,
    catalog,
    event,
    registrations,
    scheduling,
    signin,
)
from townhall.center.sso import SsoVerifier
from townhall.center.trees import EventTrees
from townhall.config import Settings
from townhall.web.app import Component

# The portal's areas, in the order their routes are tried.
PAGE_AREAS = tuple(
    area.router for area in (signin, catalog, scheduling, event, registrations, account, admin)
)
SECRET_FILE = "secret.key"  # noqa: S105 - a file name, not a secret


def open_context(
    settings: Settings, engine: Engine, sessions: sessionmaker[Session], trees: EventTrees
) -> CenterContext:
    live.warn_if_cookies_cannot_ride(settings)
    return CenterContext(
        settings=settings,
        engine=engine,
        sessions=sessions,
        sso=SsoVerifier(settings.center.sso),
        secret=CenterSecret.load_or_create(settings.data / SECRET_FILE),
        trees=trees,
        keys=live.CenterKeys(settings),
    )


def component(ctx: CenterContext, *, run_workers: bool = True) -> Component:
    worker = MailWorker(ctx.sessions, ctx.settings.center.mail, ctx.settings.outbox_dir)
    return Component(
        name="center",
        # FastAPI tries a request's path against each route in turn, at about a microsecond
        # each: the catalog and event pages, asked most after the API, come before the
        # feature routers (the event page was the 60th route tried, 76 µs a request;
        # bench/README.md, ninth pass). tests/web/test_route_order.py checks that no route
        # hides another.
        routers=(
            api.router,
            *PAGE_AREAS,
            access_routes.router,
            attendance_routes.router,
            polls.router,
            recording_routes.router,
        ),
        json_prefixes=("/api/",),
        state=ctx,
        workers=(worker.run,) if run_workers else (),
        collectors=(MailQueueCollector(ctx.sessions),),
    )
