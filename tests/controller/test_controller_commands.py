"""``townhall controller`` and ``townhall live`` as an operator runs them.

The commands are mounted on a Typer app built here (``command.register``),
as ``townhall.cli`` does. Enrolment talks to a real Center; the last test
runs both commands as processes against one database.
"""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import typer
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from typer.testing import CliRunner

from tests.controller.controller_support import World
from tests.support import Center
from townhall import cli, inprocess
from townhall.center import live
from townhall.config import Settings
from townhall.controller.command import plan_live, register
from townhall.controller.identity import (
    controller_certificate,
    issue_local_identity,
    live_identity,
    pull_self,
)
from townhall.inprocess import controller_wiring
from townhall.manager import registry

APP = typer.Typer()
register(APP, controller_wiring())
SCRIPT = (
    "import typer\n"
    "from townhall.controller.command import register\n"
    "from townhall.inprocess import controller_wiring\n"
    "app = typer.Typer()\n"
    "register(app, controller_wiring())\n"
    "app()\n"
)


def enrolment_secret(center: Center, name: str) -> str:
    with center.sessions() as session:  # type: ignore[operator]
        server = registry.create_server(
            session,
            registry.ServerIn(name=name, host="127.0.0.1", port=9443, zone="dmz", capacity=250),
        )
        secret, _ = registry.start_enrolment(session, server, 1)
        session.commit()
    return secret


def test_a_live_server_enrols_once_and_then_pulls_its_configuration(
    center: Center, tmp_path: Path
) -> None:
    secret = enrolment_secret(center, "live-1")
    machine = tmp_path / "live-machine"  # another machine: no database, no CA key
    runner = CliRunner()
    args = ["live", "--name", "live-1", "--manager", center.url, "--data", str(machine)]
    done = runner.invoke(APP, [*args, "--enroll-secret", secret, "--enroll-only"])
    assert done.exit_code == 0, done.output
    assert "enrolled live-1" in done.output

    identity = live_identity(Settings(data=machine), "live-1")
    assert identity.exists() and identity.name == "live-1"
    assert stat.S_IMODE(identity.key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(identity.token_file.stat().st_mode) == 0o600
    assert identity.ca_file.read_bytes() == (center.settings.data / "pki" / "ca.pem").read_bytes()
    assert not (machine / "pki").exists()

    config = pull_self(identity)
    assert config["name"] == "live-1" and config["zone"] == "dmz"
    plan = plan_live(
        Settings(data=machine), identity, "live-1", listen=None, controller_address=None
    )
    assert (plan.listen, plan.controller, plan.capacity) == (
        "127.0.0.1:9443",
        center.settings.controller.listen,
        250,
    )

    # The secret was for one use; the identity stays as it was.
    again = runner.invoke(APP, [*args, "--enroll-secret", secret, "--enroll-only"])
    assert again.exit_code == 1 and "refused" in again.output
    assert identity.name == "live-1" and pull_self(identity)["name"] == "live-1"


def test_live_without_an_identity_says_how_to_get_one(tmp_path: Path) -> None:
    runner = CliRunner()
    done = runner.invoke(APP, ["live", "--name", "hall", "--data", str(tmp_path / "d")])
    assert done.exit_code == 1
    assert "--enroll-secret" in done.output and "townhall manager enroll" in done.output
    bad = runner.invoke(APP, ["live", "--name", "../etc", "--data", str(tmp_path / "d")])
    assert bad.exit_code == 2
    lonely = runner.invoke(
        APP, ["live", "--name", "hall", "--enroll-secret", "x", "--data", str(tmp_path / "d")]
    )
    assert lonely.exit_code == 2 and "--manager" in lonely.output


def test_the_controllers_certificate_is_made_once_for_its_host(tmp_path: Path) -> None:
    settings = Settings(data=tmp_path / "d", controller={"listen": "127.0.0.1:8443"})
    first = controller_certificate(settings)
    assert controller_certificate(settings) == first
    assert stat.S_IMODE(first[1].stat().st_mode) == 0o600
    assert first[2].read_bytes() == (tmp_path / "d" / "pki" / "ca.pem").read_bytes()


def wait_for_line(path: Path, pattern: str, process: subprocess.Popen[bytes]) -> re.Match[str]:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = re.search(pattern, path.read_text(errors="replace"))
        if found:
            return found
        if process.poll() is not None:
            break
        time.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in:\n{path.read_text(errors='replace')[-3000:]}")


def test_the_controller_and_a_live_server_run_as_commands(
    tmp_path: Path, database_url: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    world = World(data, database_url)
    try:
        (data / "townhall.toml").write_text(
            f'[center]\ndatabase_url = "{database_url}"\n'
            '[controller]\nlisten = "127.0.0.1:0"\ntick_seconds = 0.1\nreport_seconds = 0.2\n'
        )
        world.server("main")
        world.default_tree([("main", None)])
        event_id = world.schedule()
        issue_local_identity(world.settings, "main", ["127.0.0.1"])
        environment = {k: v for k, v in os.environ.items() if not k.startswith("TOWNHALL_")}
        processes: list[subprocess.Popen[bytes]] = []
        try:
            log = tmp_path / "controller.log"
            with log.open("wb") as out:
                controller = subprocess.Popen(
                    [sys.executable, "-c", SCRIPT, "controller", "--data", str(data)],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            processes.append(controller)
            port = wait_for_line(log, r"listens on 127\.0\.0\.1:(\d+)", controller).group(1)
            live_log = tmp_path / "live.log"
            with live_log.open("wb") as out:
                live = subprocess.Popen(
                    [
                        sys.executable,
                        "-c",
                        SCRIPT,
                        "live",
                        "--name",
                        "main",
                        "--listen",
                        "127.0.0.1:0",
                        "--controller",
                        f"127.0.0.1:{port}",
                        "--data",
                        str(data),
                    ],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=environment,
                )
            processes.append(live)
            deadline = time.monotonic() + 30
            while world.live_state(event_id)[0] != "ready":
                assert time.monotonic() < deadline, live_log.read_text() + log.read_text()
                time.sleep(0.05)
            wait_for_line(live_log, r"linked to the Controller as main", live)
            # SIGTERM (as `townhall up` stops its children) is a clean stop: Bye to the links.
            controller.send_signal(signal.SIGTERM)
            assert controller.wait(timeout=20) == 0
            wait_for_line(live_log, r"the Controller closes the link: shutdown", live)
            live.send_signal(signal.SIGINT)  # and so is Ctrl-C
            assert live.wait(timeout=20) == 0
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=20)
    finally:
        world.close()


def test_the_key_center_key_prints_is_the_one_the_controller_is_given(tmp_path: Path) -> None:
    center = Settings(data=tmp_path / "center-machine")
    printed = CliRunner().invoke(cli.app, ["center-key", "--data", str(center.data)])
    assert printed.exit_code == 0, printed.output
    # The Controller's machine: no Center data folder, only the setting.
    controller = Settings(
        data=tmp_path / "controller-machine",
        controller={"center_public_key": printed.output.strip()},
    )
    given = inprocess.center_key(controller)
    assert given.public_bytes(Encoding.Raw, PublicFormat.Raw) == live.center_public_key(
        center
    ).public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert not (controller.data / "center").exists()
