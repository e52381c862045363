"""What every Center request handler is given: settings, database, SSO, secret, links.

One ``CenterContext`` is built by ``app.create_app`` and hung on the
application; handlers reach it through ``request.app.state.center``. It holds
nothing that changes per request, so several Center processes behind the
reverse proxy behave as one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from townhall.center.accounts import CenterSecret
from townhall.center.events import Links
from townhall.center.sso import SsoVerifier
from townhall.center.tables import Registration
from townhall.center.trees import EventTrees
from townhall.config import Settings


@dataclass(frozen=True, slots=True)
class CenterContext:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    sso: SsoVerifier
    secret: CenterSecret
    trees: EventTrees  # the Manager's answers about server trees (center/trees.py)

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

    @property
    def links(self) -> Links:
        return Links(base_url=self.base_url, join_link=self.join_link)

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.sessions() as session:
            yield session
