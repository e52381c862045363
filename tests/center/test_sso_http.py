"""Single sign-on through a trusted proxy, seen over real HTTP from two loopback addresses.

The "proxy" is a client bound to 127.0.0.2, the only trusted address; a
client on 127.0.0.1 plays someone who reaches the Center directly.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.support import Center, make_settings, start_center
from townhall.center import accounts

PROXY = "127.0.0.2"


def via(address: str, center: Center) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(
        base_url=center.url, transport=transport, timeout=20, follow_redirects=False
    )


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path / "data",
        database_url,
        sso={
            "trusted_proxies": [f"{PROXY}/32"],
            "email_header": "X-Remote-Email",
            "groups_header": "X-Remote-Groups",
            "group_roles": {"staff-organizers": "organizer", "it-admins": "admin"},
            "auto_create_users": True,
            "capture_cookies": ["mod_auth_form_session"],
        },
    )


def test_a_user_named_by_the_trusted_proxy_is_signed_in(center: Center) -> None:
    with via(PROXY, center) as proxy:
        me = proxy.get(
            "/api/v1/me",
            headers={
                "X-Remote-User": "nora",
                "X-Remote-Email": "nora@example.org",
                "X-Remote-Groups": "everyone, staff-organizers",
            },
        )
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "nora"
    assert me.json()["role"] == "organizer"
    assert me.json()["email"] == "nora@example.org"
    assert me.json()["signed_in_via"] == "sso"


def test_an_existing_account_is_used_and_can_schedule(center: Center) -> None:
    with via(PROXY, center) as proxy:
        response = proxy.post(
            "/api/v1/events",
            headers={"X-Remote-User": "olga"},
            json={
                "title": "Via the proxy",
                "starts_at": "2031-01-01T10:00:00Z",
                "duration_minutes": 30,
                "kind": "lecture",
                "visibility": "public",
            },
        )
    assert response.status_code == 201, response.text
    assert response.json()["organizer"] == "olga"


def test_the_same_header_from_elsewhere_is_ignored_and_logged(
    center: Center, caplog: pytest.LogCaptureFixture
) -> None:
    with via("127.0.0.1", center) as direct:
        response = direct.get("/api/v1/me", headers={"X-Remote-User": "ada"})
    assert response.status_code == 401
    assert any("127.0.0.1" in r.getMessage() for r in caplog.records if r.name.endswith("sso"))
    assert not any("ada" in r.getMessage() for r in caplog.records if r.name.endswith("sso"))


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Remote-User", "olga"), ("X-Remote-User", "ada")],
        [("X-Remote-User", "olga, ada")],
        [("X-Remote-User", "olga"), ("X_Remote_User", "ada")],
        [("X_Remote_User", "ada")],
        [
            ("X-Remote-User", "olga"),
            ("X-Remote-Email", "a@example.org"),
            ("X-Remote-Email", "b@example.org"),
        ],
    ],
    ids=["repeated", "comma", "underscore-twin", "twin-alone", "repeated-email"],
)
def test_spoofed_identity_headers_from_the_proxy_are_refused(
    center: Center, headers: list[tuple[str, str]]
) -> None:
    with via(PROXY, center) as proxy:
        response = proxy.get("/api/v1/me", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"].startswith("sso_")


def test_a_request_from_the_proxy_without_the_header_is_signed_out(center: Center) -> None:
    with via(PROXY, center) as proxy:
        assert proxy.get("/api/v1/me").status_code == 401


def test_an_sso_user_never_sees_the_sign_in_page(center: Center) -> None:
    with via(PROXY, center) as proxy:
        response = proxy.get("/login?next=/events", headers={"X-Remote-User": "mike"})
        assert response.status_code in (302, 303)
        assert response.headers["location"] == "/events"
        page = proxy.get("/events", headers={"X-Remote-User": "mike"})
        assert page.status_code == 200
        assert "townhall_session" not in page.cookies


def test_a_user_first_seen_on_the_catalog_page_gets_an_account(center: Center) -> None:
    # The catalog page reads on the event loop on SQLite; creating the account is a write,
    # so the page is then made on a thread (web.deps.in_one_hop): it must still answer.
    with via(PROXY, center) as proxy:
        page = proxy.get("/events", headers={"X-Remote-User": "walter"})
        assert page.status_code == 200, page.text
        assert "walter" in page.text
        me = proxy.get("/api/v1/me", headers={"X-Remote-User": "walter"})
    assert me.json()["username"] == "walter"
    assert me.json()["signed_in_via"] == "sso"


def test_unknown_users_are_refused_without_auto_create(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(
        tmp_path / "data", database_url, sso={"trusted_proxies": [f"{PROXY}/32"]}
    )
    server, center = start_center(settings, run_workers=False)
    with server as url:
        center.url = url
        with via(PROXY, center) as proxy:
            response = proxy.get("/api/v1/me", headers={"X-Remote-User": "stranger"})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "sso_user_unknown"


def test_header_sso_is_off_when_no_proxy_is_trusted(tmp_path: Path, database_url: str) -> None:
    settings = make_settings(tmp_path / "data", database_url)
    server, center = start_center(settings, run_workers=False)
    with server as url:
        center.url = url
        center.add_user("olga", role="organizer")
        with via(PROXY, center) as proxy:
            assert proxy.get("/api/v1/me", headers={"X-Remote-User": "olga"}).status_code == 401


# --- signed assertions -----------------------------------------------------------------


@pytest.fixture
def signing_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def assertion_center(
    tmp_path: Path, database_url: str, signing_key: ec.EllipticCurvePrivateKey
) -> Iterator[Center]:
    key_file = tmp_path / "proxy-key.pem"
    key_file.write_bytes(
        signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    settings = make_settings(
        tmp_path / "data",
        database_url,
        sso={
            "trusted_proxies": [f"{PROXY}/32"],
            "assertion_header": "X-Pomerium-Jwt-Assertion",
            "assertion_public_key_file": str(key_file),
            "assertion_issuer": "https://auth.example.org",
            "assertion_audience": "townhall.example.org",
            "auto_create_users": True,
        },
    )
    server, center = start_center(settings, run_workers=False)
    with server as url:
        center.url = url
        yield center


def assertion(key: ec.EllipticCurvePrivateKey, **claims: object) -> str:
    body: dict[str, object] = {
        "iss": "https://auth.example.org",
        "aud": "townhall.example.org",
        "email": "pat@example.org",
        "exp": int(time.time()) + 300,
        "iat": int(time.time()),
    }
    body.update(claims)
    return jwt.encode(body, key, algorithm="ES256")


def test_a_good_assertion_signs_the_user_in(
    assertion_center: Center, signing_key: ec.EllipticCurvePrivateKey
) -> None:
    with via(PROXY, assertion_center) as proxy:
        response = proxy.get(
            "/api/v1/me", headers={"X-Pomerium-Jwt-Assertion": assertion(signing_key)}
        )
    assert response.status_code == 200, response.text
    assert response.json()["username"] == "pat@example.org"


@pytest.mark.parametrize("flaw", ["forged", "expired", "wrong-audience", "wrong-issuer"])
def test_a_bad_assertion_is_refused(
    assertion_center: Center, signing_key: ec.EllipticCurvePrivateKey, flaw: str
) -> None:
    token = {
        "forged": lambda: assertion(ec.generate_private_key(ec.SECP256R1())),
        "expired": lambda: assertion(signing_key, exp=int(time.time()) - 3600),
        "wrong-audience": lambda: assertion(signing_key, aud="other-app"),
        "wrong-issuer": lambda: assertion(signing_key, iss="https://evil.example"),
    }[flaw]()
    with via(PROXY, assertion_center) as proxy:
        response = proxy.get("/api/v1/me", headers={"X-Pomerium-Jwt-Assertion": token})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sso_assertion_invalid"
    assert token not in response.text


def test_a_bare_name_header_is_not_enough_in_assertion_mode(assertion_center: Center) -> None:
    with via(PROXY, assertion_center) as proxy:
        assert proxy.get("/api/v1/me", headers={"X-Remote-User": "pat"}).status_code == 401


class MadeMeanwhile:
    """Another Center process that makes an account (``username``, ``email``) just before the
    request's own INSERT of the account runs: on a connection of its own, committed. Every
    engine is watched: a page's reads have a pool of their own on PostgreSQL."""

    def __init__(self, center: Center, username: str, email: str | None) -> None:
        self.center, self.username, self.email, self.done = center, username, email, False

    def __enter__(self) -> MadeMeanwhile:
        sa.event.listen(sa.Engine, "before_cursor_execute", self.before)
        return self

    def __exit__(self, *_: object) -> None:
        sa.event.remove(sa.Engine, "before_cursor_execute", self.before)

    def before(self, _conn, _cursor, statement: str, *_: object) -> None:  # type: ignore[no-untyped-def]
        if self.done or not statement.lstrip().upper().startswith("INSERT INTO CENTER_USERS"):
            return
        self.done = True  # before the account below, whose INSERT comes here too
        with self.center.sessions() as other:  # type: ignore[operator]
            accounts.create_user(
                other, self.username, email=self.email, display_name="Made elsewhere", source="sso"
            )
            other.commit()


def test_an_account_made_meanwhile_by_another_request_of_the_user_is_used(center: Center) -> None:
    # Two first requests of one person reach two Center processes at once: both look the
    # name up, find nothing, and make the account; one of them must use the other's.
    with MadeMeanwhile(center, "nina", None) as other, via(PROXY, center) as proxy:
        me = proxy.get("/api/v1/me", headers={"X-Remote-User": "nina"})
    assert other.done
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "nina"
    assert me.json()["display_name"] == "Made elsewhere"


def test_a_page_made_again_on_a_thread_finds_an_account_made_meanwhile(center: Center) -> None:
    # A new user's page is tried on the event loop (on SQLite), which cannot write, then
    # made on a thread; the account may appear between the two.
    with MadeMeanwhile(center, "nina", None) as other, via(PROXY, center) as proxy:
        page = proxy.get("/events", headers={"X-Remote-User": "nina"})
    assert other.done
    assert page.status_code == 200, page.text
    assert "Made elsewhere" in page.text


def test_an_email_taken_meanwhile_leaves_the_new_account_without_it(center: Center) -> None:
    headers = {"X-Remote-User": "nina", "X-Remote-Email": "nina@example.org"}
    with MadeMeanwhile(center, "nina.old", "nina@example.org") as other, via(PROXY, center) as p:
        me = p.get("/api/v1/me", headers=headers)
    assert other.done
    assert me.status_code == 200, me.text
    assert me.json()["username"] == "nina"
    assert me.json()["email"] is None
    with center.sessions() as session:  # type: ignore[operator]
        holder = accounts.user_by_email(session, "nina@example.org")
        assert holder is not None and holder.username == "nina.old"
