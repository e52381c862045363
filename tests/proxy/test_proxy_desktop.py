"""Scheduling from the desktop through the real Apache + slapd rig (and nginx), as the add-in does.

``townhall events create`` meets Apache's HTML sign-in page, recognises it,
reads the password from standard input, posts the form, keeps the proxy's
cookie in the user's config folder (mode 0600) and creates the event; later
commands reuse the cookie without asking, until it expires. With an API
token they talk to the API without any sign-in. ``townhall client`` keeps
the list of Centers and shows their upcoming events together.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.proxy.proxy_support import COOKIE, PASSWORDS, Rig
from townhall.desktop import register
from townhall.desktop.store import COOKIES_FILE, Store

app = typer.Typer()
register(app)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("TOWNHALL_TOKEN", raising=False)
    return tmp_path


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, list(args), input=stdin)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_create_list_and_cancel_through_apache(rig: Rig, apache: str, home: Path) -> None:
    common = ["--center", apache, "--ca-file", rig.ca_file]
    code, out, err = run(
        "events", "create", *common,
        "--user", "olga", "--password-stdin",
        "--title", "Budget planning from the desktop",
        "--start", "2031-03-01 10:00", "--timezone", "Europe/Berlin",
        "--duration", "1h30m",
        "--invite", "dora@example.org", "--invite", "eve@example.org",
        stdin=PASSWORDS["olga"] + "\n",
    )  # fmt: skip
    assert code == 0, err
    assert out.startswith("created event ")
    event_id = int(out.split()[2].rstrip(":"))
    assert "invited 2: dora@example.org, eve@example.org" in out
    assert f"{apache}/events/{event_id}" in out

    with rig.center.client("ada") as api:
        event = api.get(f"/api/v1/events/{event_id}").json()
    assert event["organizer"] == "olga"
    assert event["starts_at"] == "2031-03-01T09:00:00Z"  # 10:00 in Berlin, winter time
    assert (event["duration_minutes"], event["timezone"]) == (90, "Europe/Berlin")
    assert sorted(event["invitees"]) == ["dora@example.org", "eve@example.org"]

    # The proxy's cookie is kept for later calls, readable by the user only; never the password.
    folder = home / "config" / "townhall"
    cookies = folder / COOKIES_FILE
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(cookies).st_mode) == 0o600
    kept = json.loads(cookies.read_text())
    assert [c["name"] for c in kept[apache]] == [COOKIE]
    assert kept[apache][0]["expires"] is not None
    assert PASSWORDS["olga"] not in cookies.read_text()

    # No password now (standard input is not a terminal): the stored cookie does it.
    code, out, err = run("events", "list", *common)
    assert code == 0, err
    assert any(
        line.startswith(f"{event_id}\t") and line.endswith("Budget planning from the desktop")
        for line in out.splitlines()
    )
    code, out, err = run("events", "cancel", str(event_id), *common)
    assert (code, out.strip()) == (
        0,
        f"cancelled event {event_id}: Budget planning from the desktop",
    )
    with rig.center.client("ada") as api:
        assert api.get(f"/api/v1/events/{event_id}").json()["status"] == "cancelled"


def test_an_expired_cookie_means_signing_in_again(rig: Rig, apache: str, home: Path) -> None:
    common = ["--center", apache, "--ca-file", rig.ca_file, "--user", "mike"]
    code, _, err = run("events", "list", *common, "--password-stdin", stdin=PASSWORDS["mike"])
    assert code == 0, err
    store = Store()
    cookies = store.cookies(apache)
    assert cookies
    store.save_cookies(apache, cookies)  # unchanged: still good
    assert run("events", "list", *common)[0] == 0
    path = home / "config" / "townhall" / COOKIES_FILE
    data = json.loads(path.read_text())
    for cookie in data[apache]:
        cookie["expires"] = 1_000_000  # long ago
    path.write_text(json.dumps(data))
    code, _, err = run("events", "list", *common)
    assert code == 1
    assert "no terminal to ask the password on" in err
    code, _, err = run("events", "list", *common, "--password-stdin", stdin=PASSWORDS["mike"])
    assert code == 0, err


def test_a_wrong_password_is_refused_and_nothing_is_kept(rig: Rig, apache: str, home: Path) -> None:
    code, out, err = run(
        "events", "list", "--center", apache, "--ca-file", rig.ca_file,
        "--user", "olga", "--password-stdin", stdin="not-her-password\n",
    )  # fmt: skip
    assert code == 1
    assert "refused user olga's password" in err
    assert Store().cookies(apache) == []


def test_with_a_token_no_sign_in_is_needed(rig: Rig, apache: str, home: Path) -> None:
    token = rig.center.token_for("olga")
    for center, ca in ((apache, ["--ca-file", rig.ca_file]), (rig.center_direct, [])):
        code, out, err = run(
            "events", "create", "--center", center, *ca, "--token", token,
            "--title", "Token talk", "--start", "2031-04-01T08:00:00Z", "--duration", "30",
        )  # fmt: skip
        assert code == 0, err
        assert "created event" in out
    assert not (home / "config" / "townhall" / COOKIES_FILE).exists()


def test_registered_centers_and_their_events(rig: Rig, apache: str, nginx: str, home: Path) -> None:
    with rig.center.client("olga") as api:
        for title, start in (
            ("Later talk", "2031-07-01T10:00:00Z"),
            ("Sooner talk", "2031-06-01T10:00:00Z"),
        ):
            api.post(
                "/api/v1/events",
                json={
                    "title": title,
                    "starts_at": start,
                    "duration_minutes": 30,
                    "visibility": "public",
                },
            ).raise_for_status()
    code, out, err = run(
        "client", "register", apache, "--ca-file", rig.ca_file,
        "--user", "mike", "--password-stdin", stdin=PASSWORDS["mike"],
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == f"registered {apache}: signed in as mike (via sso)"
    token = rig.center.token_for("ada")
    code, out, err = run("client", "register", nginx, "--ca-file", rig.ca_file, "--token", token)
    assert code == 0, err
    assert "signed in as ada (via token)" in out

    code, out, _ = run("client", "list")
    lines = sorted(out.splitlines())
    assert lines[0].startswith(f"{apache}\tmike\tproxy session until ")
    assert lines[1] == f"{nginx}\tada\tAPI token"

    # Both Centers' upcoming events, in time order (here one Center behind two proxies).
    code, out, err = run("client", "events", "--days", "3600")
    assert code == 0, err
    rows = [line.split("\t") for line in out.splitlines()]
    sooner = [r for r in rows if r[3] == "Sooner talk"]
    later = [r for r in rows if r[3] == "Later talk"]
    assert {r[1] for r in sooner} == {apache, nginx}
    assert rows.index(sooner[0]) < rows.index(later[0])

    code, out, _ = run("client", "forget", apache)
    assert code == 0
    assert [c.url for c in Store().centers()] == [nginx]
    assert Store().cookies(apache) == []
