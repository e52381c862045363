"""Townhall installed on the namespaces of ``topology``: every component a process of its own.

The Center (``townhall center``) and the Controller (``townhall controller``)
run on the ``center`` machine from one data folder and SQLite database; the
live servers (``townhall live``) each on their own machine with a data folder
of their own, enrolled through the Manager with a one-time secret from
``townhall manager enroll``, as docs/install.md says. The internal servers
enrol over the internal network at start; the DMZ server cannot reach the
Center, so it is enrolled once from the staff machine (``--enroll-only``, as
an administrator prepares a DMZ machine) and then runs with ``--listen`` and
``--controller`` given. The test's process prepares users and tokens in the
Center's database directly (tests/support.py's ``Center``) and speaks to the
Center's API only from the staff machine.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from tests.net.topology import (
    ADDRESS,
    CENTER_PORT,
    CHILD_PORT,
    CONTROLLER_PORT,
    DMZ_PORT,
    MAIN_PORT,
    HostLoop,
    Topology,
    wait_listening,
)
from tests.proxy.proxy_support import Daemons
from tests.support import Center
from townhall.config import load_settings
from townhall.schema import migrate
from townhall.store import make_engine, make_session_factory

TOWNHALL = [sys.executable, "-m", "townhall.cli"]
CENTER_URL = f"http://{ADDRESS['center']}:{CENTER_PORT}"

# (server, machine, port, zone, parent in the default tree)
SERVERS = (
    ("main", "main", MAIN_PORT, "internal", None),
    ("child", "child", CHILD_PORT, "internal", "main"),
    ("dmz", "dmz", DMZ_PORT, "dmz", "main"),
)


@dataclass
class Deployment:
    topology: Topology
    work: Path
    center: Center
    staff: HostLoop  # the internal users' machine
    outside: HostLoop  # the Internet users' machine
    daemons: Daemons

    def logs(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted((self.work / "logs").glob("*.log"))
        )

    def schedule_now(self, title: str) -> int:
        """An event starting now (as olga), so the Controller assigns its tree at once."""

        def post() -> int:
            with self.center.client("olga") as olga:
                response = olga.post(
                    "/api/v1/events",
                    json={
                        "title": title,
                        "starts_at": datetime.now(UTC).isoformat(),
                        "duration_minutes": 60,
                        "visibility": "public",
                    },
                )
            assert response.status_code == 201, response.text
            return int(response.json()["id"])

        return self.staff.call(post)

    def wait_ready(self, event_id: int, attempts: int = 150) -> dict[str, object]:
        """Poll the Center's API (from the staff machine) until the event's tree is ready."""

        def live() -> dict[str, object]:
            with self.center.client("olga") as api:
                response = api.get(f"/api/v1/events/{event_id}")
            assert response.status_code == 200, response.text
            state = response.json()["live"]
            assert isinstance(state, dict)
            return state

        state: dict[str, object] = {}
        for _ in range(attempts):
            state = self.staff.call(live)
            if state["state"] == "ready":
                return state
            self.staff.run(asyncio.sleep(0.3))
        raise AssertionError(f"the tree never became ready: {state}\n{self.logs()}")


def _townhall(*args: str) -> str:
    done = subprocess.run([*TOWNHALL, *args], capture_output=True, timeout=60, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"townhall {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode().strip()


def _write_settings(work: Path) -> Path:
    data = work / "center"
    data.mkdir(mode=0o700)
    (data / "townhall.toml").write_text(
        "[center]\n"
        f'listen = "{ADDRESS["center"]}:{CENTER_PORT}"\n'
        f'base_url = "{CENTER_URL}"\n'
        f'database_url = "sqlite:///{data / "townhall.db"}"\n'
        "[controller]\n"
        f'listen = "{ADDRESS["center"]}:{CONTROLLER_PORT}"\n'
        "tick_seconds = 0.3\n"
        "report_seconds = 0.5\n"
        "keepalive_seconds = 2\n"
    )
    for name, *_ in SERVERS:
        folder = work / f"live-{name}"
        folder.mkdir(mode=0o700)
        (folder / "townhall.toml").write_text("[controller]\nreport_seconds = 0.5\n")
    return data


@contextmanager
def deployed(topology: Topology, work: Path) -> Iterator[Deployment]:
    """Install and start everything; stop every process and loop afterwards, even on failure."""
    (work / "logs").mkdir()
    data = _write_settings(work)
    settings = load_settings(data, None)
    engine = make_engine(settings.database_url)
    migrate(engine)
    center = Center(url=CENTER_URL, settings=settings, sessions=make_session_factory(engine))
    for name, role in (("ada", "admin"), ("olga", "organizer"), ("mike", "member"),
                       ("nina", "member"), ("otto", "member")):  # fmt: skip
        center.add_user(name, role=role)
    secrets = {
        name: _townhall(
            "manager", "enroll", name, "--address", f"{ADDRESS[machine]}:{port}",
            "--zone", zone, "--data", str(data),
        ).splitlines()[-1]
        for name, machine, port, zone, _ in SERVERS
    }  # fmt: skip

    daemons = Daemons()
    loops: list[HostLoop] = []
    try:
        staff = HostLoop(topology.namespaces["staff"])
        loops.append(staff)
        outside = HostLoop(topology.namespaces["outside"])
        loops.append(outside)

        def start(machine: str, name: str, *args: str) -> subprocess.Popen[bytes]:
            return daemons.start(
                [*topology.exec_prefix(machine), *TOWNHALL, *args],
                work / "logs" / f"{name}.log",
                as_daemon_user=False,
            )

        def wait(process: subprocess.Popen[bytes], machine: str, port: int, name: str) -> None:
            wait_listening(
                staff, ADDRESS[machine], port, name,
                lambda: process.poll() is None, work / "logs" / f"{name}.log",
            )  # fmt: skip

        center_process = start("center", "center", "center", "--data", str(data))
        wait(center_process, "center", CENTER_PORT, "the Center")
        controller = start("center", "controller", "controller", "--data", str(data))
        wait(controller, "center", CONTROLLER_PORT, "the Controller")

        def make_tree() -> None:
            with center.client("ada") as admin:
                nodes = [{"server": name, "parent": parent} for name, *_, parent in SERVERS]
                tree = admin.post("/manager/api/v1/trees", json={"name": "site", "nodes": nodes})
                assert tree.status_code == 201, tree.text
                made = admin.post(f"/manager/api/v1/trees/{tree.json()['id']}/default")
                assert made.status_code == 200, made.text

        staff.call(make_tree)
        # The DMZ machine cannot reach the Manager: enrol it from inside, once.
        enrolled = subprocess.run(  # noqa: S603
            [
                *topology.exec_prefix("staff"), *TOWNHALL, "live", "--name", "dmz",
                "--enroll-secret", secrets["dmz"], "--manager", CENTER_URL, "--enroll-only",
                "--data", str(work / "live-dmz"),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )  # fmt: skip
        assert enrolled.returncode == 0, enrolled.stderr.decode(errors="replace")
        for name, machine, port, _, _ in SERVERS:
            if name == "dmz":
                args = ["--listen", f"{ADDRESS['dmz']}:{DMZ_PORT}",
                        "--controller", f"{ADDRESS['center']}:{CONTROLLER_PORT}"]  # fmt: skip
            else:
                args = ["--enroll-secret", secrets[name], "--manager", CENTER_URL]
            process = start(
                machine, name, "live", "--name", name, *args, "--data", str(work / f"live-{name}")
            )
            wait(process, machine, port, f"live server {name}")
        yield Deployment(topology, work, center, staff, outside, daemons)
    finally:
        daemons.stop()
        for loop in loops:
            loop.close()
        engine.dispose()
