"""Password sign-in throttling: exponential backoff per (account, address) and per address.

Each failed password sign-in counts against two keys: the account asked for
from this client address, and the address alone (which catches one client
trying many accounts). Past a number of free failures, each further one
blocks the key for twice as long as the one before, up to a cap; while a key
is blocked, sign-in is refused before the password is even checked, and a
refused attempt does not lengthen the block. So an attacker slows guessing
to one try per cap, while the real user, from another address, is never
blocked at all, and from the same address waits at most the cap: nobody is
locked out for good. A success clears its (account, address) key; a key
forgotten for ``forget_after`` starts afresh. The counts live in the
database (``tables.SignInFailures``) so that several Center processes agree.
This module knows no HTTP: ``now`` and the client address are passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from townhall.center.tables import SignInFailures
from townhall.config import Settings


@dataclass(frozen=True, slots=True)
class ThrottleRules:
    free_failures: int = 5  # of one account from one address, before any wait
    address_free_failures: int = 20  # of one address, whatever the accounts
    backoff_seconds: float = 1.0  # the first wait; each further failure doubles it
    cap_seconds: float = 900.0  # the longest wait
    forget_after: timedelta = timedelta(hours=24)

    @classmethod
    def of(cls, settings: Settings) -> ThrottleRules:
        center = settings.center
        return cls(
            free_failures=center.sign_in_free_failures,
            address_free_failures=center.sign_in_address_free_failures,
            backoff_seconds=center.sign_in_backoff_seconds,
            cap_seconds=center.sign_in_backoff_cap_seconds,
        )

    def block_for(self, failures: int, free: int) -> float:
        """Seconds to block a key after its ``failures``-th failure (0: none yet)."""
        beyond = failures - free
        if beyond <= 0:
            return 0.0
        return float(min(self.cap_seconds, self.backoff_seconds * 2.0 ** min(beyond - 1, 40)))


def _keys(username: str, address: str) -> tuple[str, str]:
    return f"pair:{username.strip().lower()[:254]}|{address[:64]}", f"addr:{address[:64]}"


def wait_seconds(
    session: Session, rules: ThrottleRules, username: str, address: str, now: datetime
) -> int:
    """Seconds (rounded up) before ``username`` may try a password from ``address``; 0: now."""
    rows = session.scalars(
        select(SignInFailures).where(SignInFailures.key.in_(_keys(username, address)))
    ).all()
    longest = max(
        (row.blocked_until for row in rows if row.blocked_until is not None), default=None
    )
    if longest is None or longest <= now:
        return 0
    return max(1, math.ceil((longest - now).total_seconds()))


def record_failure(
    session: Session, rules: ThrottleRules, username: str, address: str, now: datetime
) -> None:
    """Count a wrong password against both keys, and commit."""
    pair, by_address = _keys(username, address)
    for key, free in ((pair, rules.free_failures), (by_address, rules.address_free_failures)):
        _count(session, rules, key, free, now)
    session.commit()


def _count(session: Session, rules: ThrottleRules, key: str, free: int, now: datetime) -> None:
    for _ in range(2):  # a second try when another process inserted the key meanwhile
        row = session.scalar(
            select(SignInFailures).where(SignInFailures.key == key).with_for_update()
        )
        if row is None:
            row = SignInFailures(key=key, failures=0, last_failure_at=now)
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:
                continue
        if now - row.last_failure_at > rules.forget_after:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        block = rules.block_for(row.failures, free)
        row.blocked_until = now + timedelta(seconds=block) if block else None
        return


def record_success(session: Session, username: str, address: str) -> None:
    """The right password: the (account, address) key starts afresh (the caller commits)."""
    pair, _ = _keys(username, address)
    row = session.get(SignInFailures, pair)
    if row is not None:
        session.delete(row)
