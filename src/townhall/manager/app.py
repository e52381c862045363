"""The Manager as a web component: its JSON API and its admin pages.

``component()`` is what the composition root (``townhall.webprocess``) hangs
on the web shell beside the Center; errors under ``/manager/api/`` are JSON.
The Manager keeps no state of its own on the application: settings and the
database come from the shell (``townhall.web``).
"""

from __future__ import annotations

from townhall.manager import api, pages
from townhall.web.app import Component


def component() -> Component:
    return Component(
        name="manager",
        routers=(api.router, pages.router),
        json_prefixes=("/manager/api/",),
    )
