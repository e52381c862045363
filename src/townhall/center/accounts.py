"""Accounts: users, password hashing, API tokens, browser sessions, the Center's secret.

Passwords are hashed with Argon2id (argon2-cffi). API tokens and session
cookies are random bearer secrets of which only a SHA-256 digest is stored, so
a copy of the database lets nobody sign in. The Center's secret key (for
personal join links and CSRF) is a file in the data folder, shared by every
Center instance that serves the same database.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, make_transient_to_detached

from townhall.center.tables import ApiToken, User, WebSession
from townhall.store import will_write
from townhall.store.conventions import now_utc
from townhall.web.errors import WebError

ROLES = ("admin", "organizer", "member")
TOKEN_PREFIX = "th_"  # noqa: S105 - a prefix that makes leaked tokens easy to scan for
USERNAME_PATTERN = re.compile(r"^[A-Za-z0-9._@+-]{1,128}$")
EMAIL_PATTERN = re.compile(
    r"^[^@\s\x00-\x1f\x7f<>\"',;]{1,64}@(?:[A-Za-z0-9.-]{1,188}\.[A-Za-z]{2,63}|localhost)$"
)

_hasher = PasswordHasher()


class AccountError(WebError, ValueError):
    """An account, password or token the rules refuse: always the sender's input (422)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(422, code, message)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def valid_email(value: str) -> bool:
    return len(value) <= 254 and bool(EMAIL_PATTERN.match(value))


@dataclass(frozen=True, slots=True)
class CenterSecret:
    key: bytes

    @classmethod
    def load_or_create(cls, path: Path) -> CenterSecret:
        if path.exists():
            return cls(bytes.fromhex(path.read_text().strip()))
        path.parent.mkdir(parents=True, exist_ok=True)
        key = secrets.token_bytes(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(key.hex())
        return cls(key)

    def sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self.key, f"{purpose}:{value}".encode(), hashlib.sha256)
        return mac.hexdigest()[:32]

    def check(self, purpose: str, value: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(purpose, value), signature)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def check_password(user: User, password: str) -> bool:
    if not user.password_hash or not user.active:
        # Spend the same time as a real check so that probing usernames is not cheaper.
        _hasher.hash(password)
        return False
    try:
        return _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _check_new_account(username: str, role: str, email: str | None) -> None:
    """AccountError unless a new account may have this name, role and email."""
    if not USERNAME_PATTERN.match(username):
        raise AccountError("invalid_username", "username may use letters, digits and ._@+- only")
    if role not in ROLES:
        raise AccountError("invalid_role", f"role must be one of {', '.join(ROLES)}")
    if email is not None and not valid_email(email):
        raise AccountError("invalid_email", f"not an email address: {email!r}")


def create_user(
    session: Session,
    username: str,
    *,
    email: str | None = None,
    role: str = "member",
    password: str | None = None,
    display_name: str = "",
    source: str = "local",
    email_verified: bool = True,
) -> User:
    """A new account. ``email_verified``: someone vouches for the email (an admin does,
    by default); see ``email_owner`` and docs/sso.md, "Email addresses"."""
    _check_new_account(username, role, email)
    if password is not None and len(password) < 8:
        raise AccountError("weak_password", "a password needs at least 8 characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AccountError("user_exists", f"user {username!r} already exists")
    if email is not None and user_by_email(session, email) is not None:
        raise AccountError("email_taken", f"another account has the email {email.lower()!r}")
    user = User(
        username=username,
        email=email.lower() if email else None,
        email_verified=bool(email) and email_verified,
        role=role,
        password_hash=hash_password(password) if password else None,
        display_name=display_name,
        source=source,
    )
    session.add(user)
    session.flush()
    return user


def _new_proxy_user(dialect: str) -> Any:
    """The INSERT of ``create_proxy_user`` for ``dialect``, built once: a name another
    request took meanwhile (or an email) makes it insert nothing and answer no row."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return insert(_USERS).on_conflict_do_nothing().returning(_USERS.c.id)


_USERS = cast("Table", User.__table__)  # a mapped class's table is a Table
_NEW_PROXY_USER = {dialect: _new_proxy_user(dialect) for dialect in ("postgresql", "sqlite")}


def create_proxy_user(
    session: Session,
    username: str,
    *,
    email: str | None,
    role: str,
    display_name: str,
    email_verified: bool,
) -> User | None:
    """A new account for someone the proxy vouches for (``source`` "sso"), in one INSERT; or
    None when another request made an account with this name, or this email, meanwhile.

    ``create_user`` checks that neither is taken with two lookups first, then flushes the
    account through the unit of work: 0.42 ms a new account with its commit, against 0.15
    (bench/README.md, eleventh pass), on the first request of each of a storm's 10,000
    users. Here the caller has just looked both up (``center.auth``), and the unique
    indexes settle a race with a request of the same person in another process, which
    ``create_user`` lost with an IntegrityError. The account is part of ``session`` as if
    it had been loaded: what the caller changes in it is written at its next flush.
    """
    _check_new_account(username, role, email)
    values = {
        "username": username,
        "email": email,
        "email_verified": email is not None and email_verified,
        "display_name": display_name,
        "role": role,
        "password_hash": None,
        "timezone": "",
        "source": "sso",
        "active": True,
        "created_at": now_utc(),
    }
    statement = _NEW_PROXY_USER[session.get_bind().dialect.name]
    user_id = session.execute(statement, values).scalar()
    if user_id is None:
        return None
    user = User(id=user_id, **values)
    make_transient_to_detached(user)  # persistent once added: no second INSERT
    session.add(user)
    return user


# Built once: every request signed in at the proxy looks its user up by name.
_USER_BY_NAME = select(User).where(User.username == bindparam("username"))


def user_by_name(session: Session, username: str) -> User | None:
    found: User | None = session.scalar(_USER_BY_NAME, {"username": username})
    return found


def user_by_email(session: Session, email: str) -> User | None:
    """The account holding ``email`` (emails are unique and stored in lower case)."""
    return session.scalar(select(User).where(User.email == email.strip().lower()).limit(1))


def email_owner(session: Session, email: str) -> User | None:
    """The account an invitation to ``email`` belongs to: one whose email is vouched for.

    An address someone merely claimed (a proxy header not trusted for emails)
    opens nobody's invitations; docs/sso.md, "Email addresses".
    """
    user = user_by_email(session, email)
    return user if user is not None and user.email_verified else None


def create_token(session: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """Create an API token; the clear value is returned once and never stored."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise AccountError("invalid_token_name", "a token name has 1 to 100 characters")
    value = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user_id=user.id, name=name, token_hash=digest(value), prefix=value[:10])
    session.add(token)
    session.flush()
    return token, value


# Every API request and every page asks one of these two, built once with the digest bound:
# building a select cost more than running it (bench/README.md). The user is an entity of the
# statement beside the few columns wanted, not the token's or session's joined relationship,
# whose loader is set up anew on each call (bench/README.md, ninth pass).
_LIVE_TOKEN = (
    select(User, ApiToken.id, ApiToken.last_used_at)
    .join(ApiToken, ApiToken.user_id == User.id)
    .where(ApiToken.token_hash == bindparam("digest"), ApiToken.revoked_at.is_(None))
)
_WEB_SESSION = (
    select(User, WebSession.id, WebSession.expires_at)
    .join(WebSession, WebSession.user_id == User.id)
    .where(WebSession.token_hash == bindparam("digest"))
)


def user_for_token(session: Session, value: str) -> User | None:
    if not value.startswith(TOKEN_PREFIX) or len(value) > 100:
        return None
    found = session.execute(_LIVE_TOKEN, {"digest": digest(value)}).one_or_none()
    if found is None:
        return None
    user, token_id, last_used_at = found
    if not user.active:
        return None
    now = now_utc()
    # Writing on every request would serialise readers on SQLite; a minute's precision is plenty.
    if last_used_at is None or now - last_used_at > timedelta(minutes=1):
        will_write(session)
        token = session.get(ApiToken, token_id)
        if token is not None:  # the caller commits what this marks dirty
            token.last_used_at = now
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(
        session.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id.desc())
        )
    )


def revoke_token(session: Session, user: User, token_id: int) -> bool:
    token = session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        return False
    if token.revoked_at is None:
        token.revoked_at = now_utc()
    return True


def open_session(session: Session, user: User, minutes: int) -> tuple[WebSession, str]:
    value = secrets.token_urlsafe(32)
    web_session = WebSession(
        token_hash=digest(value),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=now_utc() + timedelta(minutes=minutes),
    )
    session.add(web_session)
    session.flush()
    return web_session, value


def session_user(session: Session, value: str) -> tuple[User, int] | None:
    """The active user signed in by the session cookie ``value``, and the session's id;
    None for an unknown or expired session."""
    if not value or len(value) > 100:
        return None
    found = session.execute(_WEB_SESSION, {"digest": digest(value)}).one_or_none()
    if found is None:
        return None
    user, session_id, expires_at = found
    if expires_at < now_utc() or not user.active:
        return None
    return user, session_id


def close_session(session: Session, value: str) -> None:
    web_session = session.scalar(select(WebSession).where(WebSession.token_hash == digest(value)))
    if web_session is not None:
        session.delete(web_session)
