"""Settings: defaults, the TOML file, environment overrides, and refusal of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from townhall.config import load_settings


def test_defaults_need_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TOWNHALL_CENTER__LISTEN", raising=False)
    settings = load_settings(tmp_path)
    assert settings.center.listen == "127.0.0.1:8080"
    assert settings.database_url == f"sqlite:///{tmp_path.resolve() / 'townhall.db'}"
    assert settings.center.sso.enabled is False


def test_the_toml_file_and_then_the_environment_decide(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "townhall.toml").write_text(
        '[center]\nlisten = "127.0.0.1:9000"\ndefault_timezone = "Europe/Paris"\n'
        '[center.sso]\ntrusted_proxies = ["10.0.0.0/24"]\n'
    )
    assert load_settings(tmp_path).center.listen == "127.0.0.1:9000"
    monkeypatch.setenv("TOWNHALL_CENTER__LISTEN", "127.0.0.1:18080")
    monkeypatch.setenv("TOWNHALL_CENTER__SSO__HEADER", "X-Auth-User")
    settings = load_settings(tmp_path)
    assert settings.center.listen == "127.0.0.1:18080"
    assert settings.center.default_timezone == "Europe/Paris"
    assert settings.center.sso.header == "X-Auth-User"
    assert settings.center.sso.trusts("10.0.0.7") and not settings.center.sso.trusts("10.0.1.7")


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path, tmp_path / "missing.toml")


@pytest.mark.parametrize(
    "toml",
    [
        '[center]\nlisten = "nowhere"\n',
        '[center]\nlistn = "127.0.0.1:1"\n',
        '[center.sso]\ntrusted_proxies = ["not-a-network"]\n',
        '[center.mail]\nsmtp_url = "http://mail"\n',
        '[center.sso]\ngroup_roles = { staff = "king" }\n',
    ],
    ids=["listen", "typo", "network", "smtp-scheme", "role"],
)
def test_bad_settings_are_refused(tmp_path: Path, toml: str) -> None:
    (tmp_path / "townhall.toml").write_text(toml)
    with pytest.raises(ValidationError):
        load_settings(tmp_path)
