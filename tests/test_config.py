"""Settings: defaults, the TOML file, environment overrides, and refusal of bad values."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from townhall.config import Settings, default_workers, load_settings
from townhall.datafolder import DataFolderError


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
        "[live]\nroster_limit = 0\n",
        "[live]\nroster_limit = 100001\n",
    ],
    ids=["listen", "typo", "network", "smtp-scheme", "role", "roster-0", "roster-huge"],
)
def test_bad_settings_are_refused(tmp_path: Path, toml: str) -> None:
    (tmp_path / "townhall.toml").write_text(toml)
    with pytest.raises(ValidationError):
        load_settings(tmp_path)


def test_a_data_folder_another_user_owns_is_refused(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("giving a folder to another user needs root")
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    os.chown(data, 65534, 65534)  # nobody: they could swap the keys in it
    with pytest.raises(DataFolderError, match="belongs to user id 65534"):
        load_settings(data)


def test_a_data_folder_others_can_read_is_used_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)  # made by an older townhall
    with caplog.at_level(logging.WARNING, logger="townhall"):
        assert load_settings(data).data == data
    assert any("can be read by other users" in r.getMessage() for r in caplog.records)


def test_the_live_keepalive_is_a_setting_with_the_ping_before_the_timeout(
    tmp_path: Path,
) -> None:
    (tmp_path / "townhall.toml").write_text("[live]\nping_seconds = 1\nidle_timeout_seconds = 3\n")
    live = load_settings(tmp_path).live
    assert (live.ping_seconds, live.idle_timeout_seconds) == (1, 3)
    (tmp_path / "townhall.toml").write_text("[live]\nping_seconds = 5\nidle_timeout_seconds = 3\n")
    with pytest.raises(ValueError, match="ping_seconds"):
        load_settings(tmp_path)


def test_center_workers_default_to_one_per_core_up_to_eight() -> None:
    assert [default_workers(n) for n in (None, 1, 2, 8, 64)] == [1, 1, 2, 8, 8]
    assert Settings().center.workers == default_workers(os.cpu_count())
    assert Settings(center={"workers": 1}).center.workers == 1


def test_web_threads_follow_the_database_unless_set() -> None:
    assert Settings(data=Path("/tmp/x")).web_threads == 4
    postgres = {"database_url": "postgresql+psycopg://townhall@db/townhall"}
    assert Settings(center=postgres).web_threads == 3
    assert Settings(center={**postgres, "threads": 6}).web_threads == 6
    with pytest.raises(ValueError, match="threads"):
        Settings(center={"threads": 0})
