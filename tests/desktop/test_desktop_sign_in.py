"""A proxy's sign-in page is untrusted input: the desktop client never sends the password
in clear or in a URL, whatever page a ``townhall:`` link leads to."""

from __future__ import annotations

from pathlib import Path

import pytest

from townhall.desktop.session import CenterSession, DesktopError, find_login_form
from townhall.desktop.store import Store

PAGE = """<html><body><form action="{action}" method="{method}">
<input name="user"><input type="password" name="pass"><button>Sign in</button>
</form></body></html>"""


@pytest.mark.parametrize(
    ("action", "method", "why"),
    [
        ("http://evil.example/sso/login", "post", "unencrypted"),
        ("https://proxy.example/sso/login", "get", "in its URL"),
    ],
)
def test_a_sign_in_form_that_would_leak_the_password_is_refused_before_asking(
    tmp_path: Path, action: str, method: str, why: str
) -> None:
    asked: list[str] = []

    def password(url: str, username: str) -> str:
        asked.append(url)
        return "secret"

    form = find_login_form(PAGE.format(action=action, method=method), "https://proxy.example/")
    assert form is not None
    with CenterSession(
        "https://proxy.example", store=Store(tmp_path), username="ann", password=password
    ) as session:
        with pytest.raises(DesktopError, match=why):
            session.sign_in(form)
    assert asked == []
