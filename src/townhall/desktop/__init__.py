"""The desktop side of Townhall: scheduling, the user's Centers, and opening join links.

The spec's Outlook add-in and Communications Gateway, as commands: ``townhall
events`` schedules through a Center's API (signing in at the organisation's
reverse proxy like a browser, ``session``), ``townhall client`` keeps the
user's Centers and installs the desktop handler (``store``, ``handler``), and
``resolve_join_target`` turns what ``townhall join`` is given (a ticket file,
a ``townhall:`` link, an https event link) into ticket bytes (``join``).
``register(app)`` adds the commands to the ``townhall`` CLI.
"""

from __future__ import annotations

from townhall.desktop.commands import register
from townhall.desktop.join import resolve_join_target
from townhall.desktop.store import DesktopError

__all__ = ["DesktopError", "register", "resolve_join_target"]
