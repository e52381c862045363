"""The web shell's CSRF tokens are bound to the sign-in, and its cookies are ``__Host-`` on HTTPS.

The attacks are those of issue 10: a token taken from the attacker's own
session (or planted in the victim's browser as a cookie by a sibling host)
must not pass for the victim's, and over HTTPS no other host of the domain
may set the Center's cookies. Each attack is paired with the legitimate path.
The HTTPS Center is a real uvicorn on real TLS, with a certificate from the
development CA.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from http.cookies import SimpleCookie
from pathlib import Path

import httpx
import pytest

from tests.support import Center, RunningServer, make_settings
from townhall.config import Settings
from townhall.pki import DevCA
from townhall.schema import migrate
from townhall.store import make_engine
from townhall.webprocess import create_app

PASSWORD = "correct horse"


def browser(url: str, **options: object) -> httpx.Client:
    return httpx.Client(base_url=url, follow_redirects=False, timeout=20, **options)  # type: ignore[arg-type]


def sign_in(client: httpx.Client, username: str, csrf_cookie: str = "townhall_csrf") -> None:
    assert client.get("/login").status_code == 200
    response = client.post(
        "/login",
        data={
            "username": username,
            "password": PASSWORD,
            "next": "/events",
            "csrf": client.cookies[csrf_cookie],
        },
    )
    assert response.status_code == 303, response.text


def send(
    url: str, method: str, path: str, cookies: dict[str, str], **options: object
) -> httpx.Response:
    """One request with exactly these cookies, as a browser holding them would send it."""
    header = "; ".join(f"{name}={value}" for name, value in cookies.items())
    with browser(url, verify=options.pop("verify", True)) as client:
        return client.request(method, path, headers={"Cookie": header}, **options)  # type: ignore[arg-type]


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie of the response by name, with its attributes as sent."""
    found = {}
    for value in response.headers.get_list("set-cookie"):
        name = SimpleCookie(value).keys()
        found[next(iter(name))] = value
    return found


# --- tokens bound to the session --------------------------------------------------------------


@pytest.fixture
def two_signed_in(center: Center) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    olga, mike = browser(center.url), browser(center.url)
    with olga, mike:
        sign_in(olga, "olga")
        sign_in(mike, "mike")
        yield olga, mike


def zone_of(client: httpx.Client) -> str:
    return str(client.get("/api/v1/me").json()["timezone"])


def test_a_form_token_from_another_session_is_refused(
    center: Center, two_signed_in: tuple[httpx.Client, httpx.Client]
) -> None:
    olga, mallory = two_signed_in
    stolen = mallory.cookies["townhall_csrf"]
    # The attacker plants their own valid token as the victim's cookie (as a sibling
    # host can on plain HTTP) and posts it in the form: cookie and form agree, but
    # the token was made for the attacker's session.
    victim = {"townhall_session": olga.cookies["townhall_session"], "townhall_csrf": stolen}
    form = {"csrf": stolen, "timezone": "Europe/Paris"}
    refused = send(center.url, "POST", "/account/timezone", victim, data=form)
    assert refused.status_code == 403
    assert "csrf_failed" in refused.text
    assert zone_of(olga) != "Europe/Paris"


def test_a_signed_in_user_posts_with_the_token_of_their_own_session(
    two_signed_in: tuple[httpx.Client, httpx.Client],
) -> None:
    olga, _ = two_signed_in
    page = olga.get("/account")
    token = olga.cookies["townhall_csrf"]
    assert f'value="{token}"' in page.text  # the forms carry the cookie's token
    done = olga.post("/account/timezone", data={"csrf": token, "timezone": "Europe/Paris"})
    assert done.status_code == 303
    assert done.headers["location"] == "/account?done=zone"
    assert zone_of(olga) == "Europe/Paris"


def test_a_token_from_before_sign_in_is_worthless_after_it(center: Center) -> None:
    with browser(center.url) as client:
        assert client.get("/login").status_code == 200
        planted = client.cookies["townhall_csrf"]
        sign_in(client, "olga")
        own = client.cookies["townhall_csrf"]
        assert own != planted
        session = client.cookies["townhall_session"]
        refused = send(
            center.url,
            "POST",
            "/logout",
            {"townhall_session": session, "townhall_csrf": planted},
            data={"csrf": planted},
        )
        assert refused.status_code == 403
        # The token her sign-in gave her works.
        assert client.post("/logout", data={"csrf": own}).status_code == 303


def test_a_session_token_stops_working_when_the_session_ends(center: Center) -> None:
    with browser(center.url) as client:
        sign_in(client, "olga")
        token = client.cookies["townhall_csrf"]
        assert client.post("/logout", data={"csrf": token}).status_code == 303
        # Signed out, the old token no longer matches who is asking.
        refused = client.post("/login", data={"csrf": token, "username": "olga"})
        assert refused.status_code == 403


# --- __Host- cookies over HTTPS -----------------------------------------------------------------


@pytest.fixture
def https_center(tmp_path: Path, database_url: str) -> Iterator[tuple[str, ssl.SSLContext]]:
    settings: Settings = make_settings(
        tmp_path / "data", database_url, base_url="https://townhall.example"
    )
    engine = make_engine(settings.database_url)
    migrate(engine)
    engine.dispose()
    ca = DevCA.ensure(tmp_path / "ca")
    issued = ca.issue("center", ["127.0.0.1"])
    app = create_app(settings, run_workers=False)
    with RunningServer(app, issued.cert_file, issued.key_file) as url:
        Center(url, settings, app.state.center.sessions).add_user("olga", role="organizer")
        yield url, ssl.create_default_context(cafile=str(ca.cert_file))


def test_over_https_the_cookies_are_host_prefixed_and_secure(
    https_center: tuple[str, ssl.SSLContext],
) -> None:
    url, trust = https_center
    with browser(url, verify=trust) as client:
        form = client.get("/login")
        assert list(set_cookies(form)) == ["__Host-townhall_csrf"]
        signed_in = client.post(
            "/login",
            data={
                "username": "olga",
                "password": PASSWORD,
                "csrf": client.cookies["__Host-townhall_csrf"],
            },
        )
        assert signed_in.status_code == 303, signed_in.text
        cookies = set_cookies(signed_in)
        assert sorted(cookies) == ["__Host-townhall_csrf", "__Host-townhall_session"]
        # What a browser requires of a __Host- cookie: Secure, Path=/, no Domain.
        for value in [*cookies.values(), *set_cookies(form).values()]:
            attributes = [part.strip().lower() for part in value.split(";")[1:]]
            assert "secure" in attributes
            assert "path=/" in attributes
            assert not any(part.startswith("domain=") for part in attributes)
        # The legitimate path: the prefixed cookies sign her in and pass her forms.
        assert client.get("/account").status_code == 200
        token = client.cookies["__Host-townhall_csrf"]
        done = client.post("/account/timezone", data={"csrf": token, "timezone": "Asia/Tokyo"})
        assert done.status_code == 303


def test_over_https_cookies_without_the_prefix_are_ignored(
    https_center: tuple[str, ssl.SSLContext],
) -> None:
    url, trust = https_center
    with browser(url, verify=trust) as client:
        sign_in(client, "olga", csrf_cookie="__Host-townhall_csrf")
        session = client.cookies["__Host-townhall_session"]
        token = client.cookies["__Host-townhall_csrf"]
    # A sibling host can set unprefixed cookies for the domain; they sign nobody in
    # and a token in them passes no form.
    tossed = {"townhall_session": session, "townhall_csrf": token}
    page = send(url, "GET", "/account", tossed, verify=trust)
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login")
    refused = send(url, "POST", "/logout", tossed, data={"csrf": token}, verify=trust)
    assert refused.status_code == 403
    # The same values under their real names work: it is the name that is refused.
    real = {"__Host-townhall_session": session, "__Host-townhall_csrf": token}
    assert send(url, "GET", "/account", real, verify=trust).status_code == 200
