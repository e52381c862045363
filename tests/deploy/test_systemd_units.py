"""deploy/systemd/: the units pass Debian's ``systemd-analyze`` and run commands that exist.

``systemd-analyze verify`` checks each unit as systemd would load it (unknown keys,
bad values, an ExecStart that is not executable); ``systemd-analyze security
--offline=yes`` scores its sandbox, and a unit must stay at "OK" or safer (at most
2.0 of 10). The units name /opt/townhall/bin/townhall; the copies checked here
name this environment's ``townhall`` instead, so that verify finds it. Skipped,
with the reason, without systemd-analyze (Debian package ``systemd``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from tests.deploy.shipped import SETTINGS, SYSTEMD
from townhall.cli import app

ANALYZE = shutil.which("systemd-analyze")
INSTALLED = "/opt/townhall/bin/townhall"
# The template is checked as one instance of it.
UNITS = {
    "townhall-center.service": "townhall-center.service",
    "townhall-controller.service": "townhall-controller.service",
    "townhall-live@.service": "townhall-live@dmz.service",
    "townhall-proxy-auth.service": "townhall-proxy-auth.service",
    "townhall-recorder.service": "townhall-recorder.service",
}
needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze is missing (Debian package systemd)"
)


def _copies(tmp_path: Path) -> Path:
    townhall = Path(sys.executable).with_name("townhall")
    assert townhall.exists(), "the townhall command of this environment"
    for shipped, checked in UNITS.items():
        text = (SYSTEMD / shipped).read_text()
        (tmp_path / checked).write_text(text.replace(INSTALLED, str(townhall)))
    return tmp_path


def _analyze(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(  # noqa: S603
        [ANALYZE, *args], capture_output=True, text=True, timeout=60, cwd=cwd, check=False
    )


def _exec_start(unit: str) -> list[str]:
    (line,) = [
        line for line in (SYSTEMD / unit).read_text().splitlines() if line.startswith("ExecStart=")
    ]
    return shlex.split(line.removeprefix("ExecStart="))


def test_every_component_has_a_unit() -> None:
    assert sorted(path.name for path in SYSTEMD.glob("*.service")) == sorted(UNITS)


@needs_analyze
@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_systemd_analyze_verify_finds_nothing_wrong(tmp_path: Path, unit: str) -> None:
    done = _analyze("verify", f"./{unit}", cwd=_copies(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout + done.stderr == ""


@needs_analyze
@pytest.mark.parametrize("unit", sorted(UNITS.values()))
def test_each_unit_is_sandboxed_to_an_ok_exposure(tmp_path: Path, unit: str) -> None:
    done = _analyze("security", "--offline=yes", f"./{unit}", cwd=_copies(tmp_path))
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze predates --offline (systemd 252)")
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", done.stdout)
    assert found is not None, done.stdout + done.stderr
    assert float(found.group(1)) <= 2.0 and found.group(2) in ("SAFE", "OK"), done.stdout


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_each_unit_is_hardened_as_docs_deployment_says(unit: str) -> None:
    keys: dict[str, list[str]] = {}
    for line in (SYSTEMD / unit).read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    for key, value in {
        "ProtectSystem": "strict",
        "NoNewPrivileges": "yes",
        "PrivateTmp": "yes",
        "ProtectHome": "yes",
        "Restart": "on-failure",
        "UMask": "0077",
        "SystemCallFilter": "@system-service",
    }.items():
        assert value in keys.get(key, []), f"{unit}: {key}={value}"
    assert "AF_PACKET" not in " ".join(keys["RestrictAddressFamilies"])
    # Only the servers that may listen on TCP 443 keep the one capability that allows it.
    binds_443 = unit in ("townhall-controller.service", "townhall-live@.service")
    assert keys["CapabilityBoundingSet"] == (["CAP_NET_BIND_SERVICE"] if binds_443 else [""])
    if "DynamicUser" in keys:
        assert "ReadWritePaths" not in keys and "StateDirectory" not in keys
    else:
        assert keys["User"] == ["townhall"]
        (state,) = keys["StateDirectory"]
        assert keys["ReadWritePaths"] == [f"/var/lib/{state}"]
        assert f"--data /var/lib/{state}" in keys["ExecStart"][0]


@pytest.mark.parametrize("unit", sorted(UNITS))
def test_each_unit_runs_a_townhall_command_with_a_shipped_settings_file(unit: str) -> None:
    argv = [arg.replace("%i", "dmz") for arg in _exec_start(unit)]
    assert argv[0] == INSTALLED
    command = typer.main.get_command(app)
    assert isinstance(command, typer.core.TyperGroup)
    if argv[1] == "proxy-auth":
        assert argv[2:] == ["$TOWNHALL_PROXY_AUTH_ARGS"]
        assert (SYSTEMD / unit).read_text().count("EnvironmentFile=/etc/townhall/proxy-auth.env")
        assert (SETTINGS / "proxy-auth.env").exists()
        return
    # Parsed as the command would parse it: an unknown option fails here.
    params = command.commands[argv[1]].make_context(argv[1], argv[2:]).params
    config = Path(params["config"])
    assert config.parent == Path("/etc/townhall")
    shipped = {"center.toml": "center.toml", "live-dmz.toml": "live-dmz.toml"}[config.name]
    assert (SETTINGS / shipped).exists()
