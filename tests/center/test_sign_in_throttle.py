"""Password sign-in is throttled by (account, address) and by address, never for good.

An attacker's wrong passwords slow down the guessing, with a clear message,
while the same account from another address and other accounts from the same
address sign in as usual; the waits double up to a cap and then lift.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from tests.center.test_pages import PASSWORD, browser, sign_in
from tests.support import Center, make_settings
from townhall.center import throttle
from townhall.config import Settings

T0 = datetime(2026, 12, 5, 9, 0, 0)


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Settings:
    # A first wait of ten minutes, so the test never races the clock; 127.0.0.1 is the
    # trusted proxy, so X-Forwarded-For names the client's address.
    return make_settings(
        tmp_path / "data",
        database_url,
        sign_in_free_failures=3,
        sign_in_address_free_failures=6,
        sign_in_backoff_seconds=600,
        sso={"trusted_proxies": ["127.0.0.1"]},
    )


def from_address(center: Center, address: str) -> httpx.Client:
    client = browser(center)
    client.headers["X-Forwarded-For"] = address
    return client


def test_wrong_passwords_throttle_the_account_from_that_address_with_a_clear_message(
    center: Center,
) -> None:
    with from_address(center, "198.51.100.66") as attacker:
        for _ in range(3):
            assert sign_in(attacker, "ada", "wrong password").status_code == 401
        # The fourth failure starts a wait: now even the right password is not tried.
        assert sign_in(attacker, "ada", "still wrong").status_code == 401
        refused = sign_in(attacker, "ada", PASSWORD)
        assert refused.status_code == 429
        assert "Too many failed sign-ins. Try again in" in refused.text
        assert 0 < int(refused.headers["retry-after"]) <= 600
        # Another account from the same address still signs in.
        assert sign_in(attacker, "mike", PASSWORD).status_code == 303
    with from_address(center, "192.0.2.10") as real_user:
        assert sign_in(real_user, "ada", PASSWORD).status_code == 303


def test_one_address_trying_many_accounts_is_throttled_as_a_whole(center: Center) -> None:
    with from_address(center, "198.51.100.77") as attacker:
        for name in ("ada", "olga", "mike", "nobody", "ada", "olga", "mike"):
            assert sign_in(attacker, name, "guess").status_code == 401
        assert sign_in(attacker, "mike", PASSWORD).status_code == 429
    with from_address(center, "192.0.2.11") as real_user:
        assert sign_in(real_user, "mike", PASSWORD).status_code == 303


def test_waits_double_up_to_the_cap_and_then_lift(center: Center) -> None:
    rules = throttle.ThrottleRules(free_failures=2, backoff_seconds=1, cap_seconds=60)
    waits = []
    with center.sessions() as session:  # type: ignore[operator]
        now = T0
        for _ in range(12):
            throttle.record_failure(session, rules, "ada", "203.0.113.1", now)
            waits.append(throttle.wait_seconds(session, rules, "ada", "203.0.113.1", now))
        assert waits == [0, 0, 1, 2, 4, 8, 16, 32, 60, 60, 60, 60]
        # The attacker cannot lock the account for good: the wait lifts after the cap...
        later = now + timedelta(seconds=60)
        assert throttle.wait_seconds(session, rules, "ada", "203.0.113.1", later) == 0
        # ...never touches the account from elsewhere, and a success clears it.
        assert throttle.wait_seconds(session, rules, "ada", "192.0.2.1", now) == 0
        throttle.record_success(session, "ada", "203.0.113.1")
        session.commit()
        assert throttle.wait_seconds(session, rules, "ada", "203.0.113.1", now) == 0
