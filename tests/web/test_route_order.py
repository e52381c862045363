"""No route of the Center's web application is hidden by one tried before it.

The routers are ordered for speed (the pages asked most come early,
``center.app.component``), and FastAPI serves a request with the first route
whose path and method match. A route listed after another that matches all
its paths would never answer: ``/events/new`` after ``/events/{event_id}``
would give the scheduling form's visitors a 422. This walks the routes in the
order the application tries them and asks each earlier route whether it takes
a sample path of each later one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from starlette.routing import BaseRoute, Route

from tests.support import make_settings
from townhall.webprocess import create_app

_PARAMETER = re.compile(r"\{[^}]+\}")


def in_trial_order(routes: list[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes as matching tries them; FastAPI 0.16x keeps an included router whole
    (``original_router``), older versions copied its routes into the application."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from in_trial_order(included.routes)
        else:
            yield route


def test_every_route_of_the_center_answers_its_own_paths(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path / "data", f"sqlite:///{tmp_path / 'center.db'}"), run_workers=False
    )
    routes = [r for r in in_trial_order(app.router.routes) if isinstance(r, Route) and r.methods]
    assert {"/events", "/events/new", "/events/{event_id}", "/api/v1/events"} <= {
        route.path for route in routes
    }
    hidden = []
    for position, route in enumerate(routes):
        sample = _PARAMETER.sub("7", route.path)
        for earlier in routes[:position]:
            same_method = (earlier.methods or set()) & (route.methods or set())
            if same_method and earlier.path_regex.match(sample):
                hidden.append(f"{sorted(same_method)} {route.path} behind {earlier.path}")
    assert not hidden, hidden
