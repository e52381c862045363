"""What every Center request handler is given: settings, database, SSO, secret, links.

One ``CenterContext`` is built by ``app.create_app`` and hung on the
application; handlers reach it through ``request.app.state.center``. It holds
nothing that changes per request, so several Center processes behind the
reverse proxy behave as one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from townhall.center.accounts import CenterSecret
from townhall.center.events import EventError, Links
from townhall.center.live import CenterKeys
from townhall.center.sso import SsoVerifier
from townhall.center.tables import Event, Registration
from townhall.center.trees import EventTrees
from townhall.config import Settings
from townhall.web.deps import MAX_ID

# A personal join link: the registration id, a dot, its signature (``join_link``).
_JOIN_LINK = re.compile(r"(\d{1,10})\.([0-9a-f]{32})")


@dataclass(frozen=True, slots=True)
class CenterContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    sso: SsoVerifier
    secret: CenterSecret
    trees: EventTrees  # the Manager's answers about server trees (center/trees.py)
    keys: CenterKeys  # the signing key and CA the tickets need, cached (center/live.py)

    @property
    def base_url(self) -> str:
        return self.settings.center.public_url

    @property
    def sender(self) -> str:
        return self.settings.center.mail.sender

    def join_link(self, registration: Registration) -> str:
        """The personal link in an invitation: it names the registration, signed."""
        signature = self.secret.sign("join", str(registration.id))
        return f"{self.base_url}/j/{registration.id}.{signature}"

    def registration_of_link(self, session: Session, link: str) -> tuple[Registration, Event]:
        """The registration a personal link names, and its event; EventError 404 if the
        link is malformed, forged or names nothing (all alike, so links are not probed)."""
        match = _JOIN_LINK.fullmatch(link)
        if match is None or int(match.group(1)) > MAX_ID:
            raise EventError(404, "link_not_found", "this link is not valid")
        registration_id, signature = match.groups()
        if not self.secret.check("join", registration_id, signature):
            raise EventError(404, "link_not_found", "this link is not valid")
        registration = session.get(Registration, int(registration_id))
        event = session.get(Event, registration.event_id) if registration is not None else None
        if registration is None or event is None:
            raise EventError(404, "link_not_found", "this link is not valid")
        return registration, event

    @property
    def links(self) -> Links:
        return Links(base_url=self.base_url, join_link=self.join_link)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session
