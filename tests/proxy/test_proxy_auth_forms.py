"""Other sites cannot sign a visitor in or out at the nginx sign-in service.

Login CSRF: an attacker who has an account in the directory makes a
victim's browser post the sign-in form with the attacker's name and password,
from the attacker's page; the victim then works (and types things) in the
attacker's account. Logout CSRF: any page with an image or a form pointing
at the sign-out URL signs the visitor out. Each attack is made against the
real nginx and sign-in service, and the user's own sign-in and sign-out
still work.
"""

from __future__ import annotations

import re

import httpx
import pytest

from tests.proxy.proxy_support import COOKIE, PASSWORDS, Rig
from townhall.desktop.session import find_login_form, login_form_of

EVIL = "https://evil.example"


def _signed_in_as(browser: httpx.Client) -> str | None:
    me = browser.get("/api/v1/me")
    if login_form_of(me) is not None or me.status_code != 200:
        return None
    return str(me.json()["username"])


def _attackers_own_form(rig: Rig, nginx: str) -> dict[str, str]:
    """What the attacker's page would post: a real form fetched by the attacker, filled in."""
    with rig.client(nginx) as attacker:
        page = attacker.get("/sso/login")
        form = find_login_form(page.text, str(page.url))
        assert form is not None
        return dict(form.filled("mike", PASSWORDS["mike"]))


@pytest.mark.parametrize("origin", [EVIL, "null"])
def test_a_sign_in_form_posted_from_another_site_signs_nobody_in(
    rig: Rig, nginx: str, origin: str
) -> None:
    fields = _attackers_own_form(rig, nginx)
    with rig.client(nginx, follow_redirects=False) as victim:
        # The victim's browser posts it (cross-site, so no cookie of the
        # service's path goes with it, and Origin names the attacker's site,
        # or "null" from a sandboxed frame).
        posted = victim.post("/sso/login", data=fields, headers={"Origin": origin})
        assert posted.status_code == 403
        assert "did not come from this site" in posted.text
        assert COOKIE not in victim.cookies
        assert _signed_in_as(victim) is None


def test_a_sign_in_form_with_another_browsers_token_is_refused(rig: Rig, nginx: str) -> None:
    # No Origin (as from a client that sends none), the victim's own pre-sign-in
    # cookie, the attacker's token: the token is bound to the attacker's cookie.
    fields = _attackers_own_form(rig, nginx)
    with rig.client(nginx, follow_redirects=False) as victim:
        victim.get("/sso/login")
        posted = victim.post("/sso/login", data=fields)
        assert posted.status_code == 403
        assert _signed_in_as(victim) is None
        # Without any token at all, the same.
        bare = victim.post("/sso/login", data={"username": "mike", "password": PASSWORDS["mike"]})
        assert bare.status_code == 403
        assert _signed_in_as(victim) is None
        # Even the victim's own token, posted from another site, is refused.
        page = victim.get("/sso/login")
        own = find_login_form(page.text, str(page.url))
        assert own is not None
        foreign = victim.post(
            "/sso/login",
            data=dict(own.filled("mike", PASSWORDS["mike"])),
            headers={"Origin": EVIL},
        )
        assert foreign.status_code == 403
        assert _signed_in_as(victim) is None


def test_a_form_from_this_site_signs_in_with_or_without_origin(rig: Rig, nginx: str) -> None:
    with rig.client(nginx) as browser:
        page = browser.get("/sso/login")
        form = find_login_form(page.text, str(page.url))
        assert form is not None
        fields = dict(form.filled("mike", PASSWORDS["mike"]))
        # A real browser sends its own origin; the token and the cookie match.
        browser.post("/sso/login", data=fields, headers={"Origin": nginx})
        assert _signed_in_as(browser) == "mike"
    with rig.client(nginx) as program:
        assert rig.sign_in(program, "mike").status_code == 200
        assert _signed_in_as(program) == "mike"


def test_sign_out_by_get_or_from_another_site_keeps_the_session(rig: Rig, nginx: str) -> None:
    with rig.client(nginx) as browser:
        rig.sign_in(browser, "mike")
        # An <img src=".../sso/logout"> on any page.
        shown = browser.get("/sso/logout")
        assert shown.status_code == 200
        assert _signed_in_as(browser) == "mike"
        token = re.search(r'name="csrf" value="([^"]+)"', shown.text)
        assert token is not None
        # A form on another site: no token, or this user's token and a foreign Origin.
        assert browser.post("/sso/logout", headers={"Origin": EVIL}).status_code == 403
        refused = browser.post(
            "/sso/logout", data={"csrf": token.group(1)}, headers={"Origin": EVIL}
        )
        assert refused.status_code == 403
        assert _signed_in_as(browser) == "mike"
        # The button on the service's own page signs out.
        out = browser.post("/sso/logout", data={"csrf": token.group(1)}, headers={"Origin": nginx})
        assert out.status_code == 200
        assert "signed out" in out.text
        assert _signed_in_as(browser) is None
