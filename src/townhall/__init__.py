"""Townhall: an on-premise platform for live online events.

Packages, one per component (see docs/architecture.md): ``center`` (portal,
REST API, SSO, scheduling, invitations), ``store`` (database plumbing),
``config`` (the one settings model) and ``cli`` (the ``townhall`` command).
"""

__version__ = "0.1.0"
