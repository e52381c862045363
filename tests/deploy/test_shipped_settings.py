"""deploy/settings/: every shipped settings file loads with its placeholders filled in.

tests/net runs a whole deployment on these files with the namespaces' addresses; here
each one is filled with the examples its comments give and read by
``townhall.config.load_settings``, as `townhall --config /etc/townhall/...` reads it,
so a key misspelt or a value out of range in a shipped file fails here too.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pytest
import typer

from tests.deploy.shipped import SETTINGS, placeholders, render_settings
from townhall.cli import app
from townhall.config import Settings, load_settings

# What an installation puts in, as the files' comments suggest.
EXAMPLE = {
    "center_listen": "10.0.1.10:8080",
    "public_url": "https://townhall.example.org",
    "database_url": "postgresql+psycopg://townhall:secret@db.example.org/townhall",
    "proxy_network": "10.0.2.10/32",
    "smtp_url": "smtp://relay.example.org:587",
    "controller_listen": "10.0.1.10:8443",
}
SHIPPED = sorted(path.name for path in SETTINGS.glob("*.toml"))


@pytest.fixture(autouse=True)
def _no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # Environment variables outrank the file: none may stand in for what it says.
    for name in list(os.environ):
        if name.startswith("TOWNHALL_"):
            monkeypatch.delenv(name)


def _load(tmp_path: Path, name: str) -> Settings:
    config = tmp_path / name
    config.write_text(render_settings(name, EXAMPLE))
    return load_settings(tmp_path / "data", config)


def test_the_shipped_settings_files_are_the_ones_documented() -> None:
    assert SHIPPED == ["center.toml", "live-dmz.toml", "live-internal.toml"]


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_settings_file_loads_once_filled_in(tmp_path: Path, name: str) -> None:
    assert placeholders(name) <= set(EXAMPLE), "a placeholder docs/deployment.md does not list"
    _load(tmp_path, name)


def test_a_placeholder_left_empty_is_an_error_not_a_default(tmp_path: Path) -> None:
    with pytest.raises(KeyError):
        render_settings("center.toml", {k: v for k, v in EXAMPLE.items() if k != "public_url"})


def test_the_center_file_trusts_only_the_proxy_and_hands_out_the_controller(
    tmp_path: Path,
) -> None:
    settings = _load(tmp_path, "center.toml")
    assert settings.center.listen == "10.0.1.10:8080"
    assert settings.center.public_url == "https://townhall.example.org"
    assert settings.database_url.startswith("postgresql+psycopg://")
    assert settings.center.sso.trusts("10.0.2.10")
    assert not settings.center.sso.trusts("10.0.2.11")
    assert settings.controller.listen == "10.0.1.10:8443"
    # The production pace: the defaults' values, written out.
    assert (settings.controller.tick_seconds, settings.controller.report_seconds) == (2, 5)


@pytest.mark.parametrize("name", ["live-internal.toml", "live-dmz.toml"])
def test_live_servers_open_their_websocket_to_the_centers_pages_only(
    tmp_path: Path, name: str
) -> None:
    settings = _load(tmp_path, name)
    assert settings.live.origins(settings.center) == ("https://townhall.example.org",)


def test_the_sign_in_service_options_are_options_of_the_command() -> None:
    line = (SETTINGS / "proxy-auth.env").read_text().split("TOWNHALL_PROXY_AUTH_ARGS=", 1)[1]
    args = shlex.split(line.splitlines()[0])
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    # Parsed as the command would parse them (an unknown option or bad value raises).
    parsed = group.commands["proxy-auth"].make_context("proxy-auth", args).params
    assert parsed["listen"] == "127.0.0.1:9091"
    assert parsed["ldap_url"].startswith("ldaps://")
