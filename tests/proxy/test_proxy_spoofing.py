"""Spoofed identity headers sent through the real proxies never make anyone someone else.

olga signs in at the proxy and then claims to be ada, the admin, in every
way a client could: the header repeated, its underscore twins, a
``Connection:`` header naming it (which would make a proxy drop the header it
set itself), and a claim with no session at all. The answer is never ada:
the proxy replaces or refuses the header, and the Center refuses what a
proxy lets through.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.proxy.proxy_support import Rig
from townhall.desktop.session import login_form_of

SPOOFS = {
    "repeated": [("X-Remote-User", "ada"), ("X-Remote-User", "ada")],
    "single": [("X-Remote-User", "ada")],
    "underscore-twin": [("X_Remote_User", "ada")],
    "mixed-twin": [("X-Remote_User", "ada"), ("X_Remote-User", "ada")],
    "twin-and-header": [("X-Remote-User", "ada"), ("X_Remote_User", "ada")],
    "connection-names-it": [("Connection", "close, X-Remote-User")],
    "connection-and-header": [("Connection", "close, X-Remote-User"), ("X-Remote-User", "ada")],
    "email": [("X-Remote-Email", "ada@example.org"), ("X_Remote_Email", "ada@example.org")],
}


@pytest.fixture(params=["nginx", "apache"])
def proxy(request: pytest.FixtureRequest) -> str:
    return str(request.getfixturevalue(request.param))


@pytest.fixture
def olga_browser(rig: Rig, proxy: str) -> Iterator[httpx.Client]:
    with rig.client(proxy) as browser:
        rig.sign_in(browser, "olga")
        yield browser


def who(response: httpx.Response) -> str | None:
    if response.status_code != 200 or login_form_of(response) is not None:
        return None
    return str(response.json()["username"])


@pytest.mark.parametrize("spoof", list(SPOOFS), ids=list(SPOOFS))
def test_a_signed_in_user_cannot_claim_another_identity(
    olga_browser: httpx.Client, spoof: str
) -> None:
    response = olga_browser.get("/api/v1/me", headers=SPOOFS[spoof])
    assert who(response) in ("olga", None), response.text[:300]
    if response.status_code == 200:
        assert response.json()["email"] == "olga@example.org"
    # Whatever happened to that request, the session is still olga's, and only hers.
    assert who(olga_browser.get("/api/v1/me")) == "olga"


@pytest.mark.parametrize("spoof", list(SPOOFS), ids=list(SPOOFS))
def test_a_claim_without_a_session_gets_the_sign_in_page(rig: Rig, proxy: str, spoof: str) -> None:
    with rig.client(proxy) as stranger:
        response = stranger.get("/api/v1/me", headers=SPOOFS[spoof])
        assert who(response) is None
        assert response.status_code in (400, 401)


def test_apache_refuses_a_connection_header_naming_the_identity(rig: Rig, apache: str) -> None:
    # Otherwise mod_proxy would drop X-Remote-User as hop-by-hop: a signed-out request.
    with rig.client(apache) as browser:
        rig.sign_in(browser, "olga")
        response = browser.get("/api/v1/me", headers={"Connection": "close, X-Remote-User"})
        assert response.status_code == 400


def test_the_center_refuses_a_twin_from_its_trusted_proxy(rig: Rig) -> None:
    # The second line of defence, had a proxy passed a twin on: seen from 127.0.0.2.
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=rig.center_direct, transport=transport, timeout=20) as proxy_like:
        response = proxy_like.get(
            "/api/v1/me", headers=[("X-Remote-User", "olga"), ("X_Remote_User", "ada")]
        )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "sso_header_twin"
