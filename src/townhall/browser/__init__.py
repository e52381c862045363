"""The browser participant and moderator: the room page and its plain ES modules.

``router`` serves ``/events/{id}/room`` (one static page; everything it shows
comes from the live server over WebSocket, and its ticket from the Center's
``POST /api/v1/events/{id}/browser-ticket``) and ``/browser/static/...`` (the
modules: ``room.js`` the page, ``wire.js`` the protocol, ``selection.js`` the
server ranking, ``polls.js`` the Polls and Questions panels, ``media/``
capture, codecs and playout, ``vendor/`` msgpack), each with its JavaScript
MIME type and a Content-Security-Policy that allows scripts from the Center only and
connections to the Center and to ``wss:`` live servers. It knows nothing of
the Center's tables or sessions: the Center includes the router.
docs/client.md ("In a browser") is the guide.
"""

from __future__ import annotations

from townhall.browser.routes import CONTENT_SECURITY_POLICY, STATIC_ROOT, router

__all__ = ["CONTENT_SECURITY_POLICY", "STATIC_ROOT", "router"]
