"""What every web request may reach: the database, who is asking, the cookie rules.

One ``WebShell`` is built by the composition root and hung on the application
(``request.app.state.web``); ``shell_of(request)`` finds it. It holds nothing
that changes per request. Who is asking is the Center's business (accounts,
tokens, the proxy's SSO header): the shell only carries the Center's
``identify`` function, so the Manager and any later component learn the
signed-in user without importing the Center. ``Viewer`` is what that function
answers; ``Person`` is all a component other than the Center may assume of a
user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar

from fastapi import Request
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from townhall.config import Settings

Via = Literal["sso", "token", "session", "anonymous"]


class Person(Protocol):
    """A signed-in user as the pages of any component see one."""

    @property
    def username(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def timezone(self) -> str: ...

    @property
    def label(self) -> str: ...


# Unbounded on purpose: a bound is checked while mypy is still analysing ORM classes
# (a Protocol against SQLAlchemy columns), and fails there; uses of Viewer[Person] check it.
U = TypeVar("U", covariant=True)


@dataclass(frozen=True, slots=True)
class Viewer(Generic[U]):
    """Who is asking, how they proved it, and the sign-in a CSRF token is bound to.

    ``session_key`` names one sign-in (a portal session, an SSO user at the
    proxy); a form token made for one is refused for another (``csrf``).
    """

    user: U | None
    via: Via
    session_key: str = ""

    @property
    def signed_in(self) -> bool:
        return self.user is not None


Identify = Callable[[Request, Session], Viewer[Person]]
Sign = Callable[[str, str], str]


@dataclass(frozen=True, slots=True)
class WebShell:
    """The shared request machinery of one web process.

    ``sign(purpose, value)`` is a keyed MAC (the Center's secret), used for
    CSRF tokens. ``https`` is true when the public URL is HTTPS: cookies are
    then ``Secure`` and named with the ``__Host-`` prefix (RFC 6265bis §4.1.3.2),
    so that no other host of the domain, and no plain-HTTP page, can set them.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    read_sessions: sessionmaker[Session]  # ``store.make_read_session_factory``: ``in_one_hop``
    identify: Identify
    sign: Sign
    # ``store.make_loop_read_session_factory``: ``in_one_hop`` on the event loop (SQLite).
    loop_read_sessions: sessionmaker[Session] | None = None

    @property
    def https(self) -> bool:
        return self.settings.center.public_url.startswith("https://")

    def cookie_name(self, name: str) -> str:
        return f"__Host-{name}" if self.https else name


def shell_of(request: Request) -> WebShell:
    shell = request.app.state.web
    if not isinstance(shell, WebShell):
        raise TypeError("the application has no web shell (build it with web.app.create_app)")
    return shell
