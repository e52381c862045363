"""Townhall installed on the namespaces of ``topology``: every component a process of its own.

The Center (``townhall center``) and the Controller (``townhall controller``)
run on the ``center`` machine from one data folder and SQLite database; the
live servers (``townhall live``) each on their own machine with a data folder
of their own, enrolled through the Manager with a one-time secret from
``townhall manager enroll``, as docs/install.md says. The reverse proxy is
nginx with the shipped site and the sign-in service (tests/proxy's rig
starters), on the ``proxy`` machine of the DMZ. The internal servers enrol
with the Center directly over the internal network; the DMZ server cannot
reach the Center, so it enrols and pulls its configuration through the
reverse proxy, trusting the Manager's CA as an organisation's machines trust
their own. The test's process prepares users and tokens in the Center's
database directly (tests/support.py's ``Center``) and speaks to the Center
from the staff machine, or through the proxy from the outside machine.
"""

from __future__ import annotations

import asyncio
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx

from tests.deploy.shipped import render_settings
from tests.net.topology import (
    ADDRESS,
    CENTER_PORT,
    CHILD_PORT,
    CONTROLLER_PORT,
    DMZ_PORT,
    MAIN_PORT,
    PROXY_PORT,
    HostLoop,
    Topology,
    wait_listening,
)
from tests.proxy.proxy_support import (
    Daemons,
    _chown_tree,
    _start_nginx,
    _start_sign_in_service,
    signal_group,
)
from tests.support import Center
from townhall.config import load_settings
from townhall.pki import DevCA
from townhall.schema import migrate
from townhall.store import make_engine, make_session_factory
from townhall.ticket import TicketContents, open_ticket

TOWNHALL = [sys.executable, "-m", "townhall.cli"]
CENTER_URL = f"http://{ADDRESS['center']}:{CENTER_PORT}"
PROXY_URL = f"https://{ADDRESS['proxy']}"

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
    ca_file: Path  # the Manager's CA, which also signed the proxy's certificate

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

    def ticket_through_proxy(self, username: str, event_id: int) -> TicketContents:
        """A join ticket asked from the outside machine, through the reverse proxy."""

        def ask() -> TicketContents:
            with httpx.Client(
                base_url=PROXY_URL,
                verify=ssl.create_default_context(cafile=str(self.ca_file)),
                headers={"Authorization": f"Bearer {self.center.token_for(username)}"},
                timeout=20,
            ) as client:
                response = client.post(f"/api/v1/events/{event_id}/ticket")
            assert response.status_code == 200, response.text
            return open_ticket(response.content, center_public_key=None, now=int(time.time()))

        return self.outside.call(ask)

    def live_state(self, event_id: int) -> dict[str, object]:
        """The event's live state as the Center's API gives it to an organizer (staff machine)."""

        def ask() -> dict[str, object]:
            with self.center.client("olga") as api:
                response = api.get(f"/api/v1/events/{event_id}")
            assert response.status_code == 200, response.text
            state = response.json()["live"]
            assert isinstance(state, dict)
            return state

        return self.staff.call(ask)

    def wait_live(
        self,
        event_id: int,
        condition: Callable[[dict[str, object]], bool],
        what: str,
        attempts: int = 150,
    ) -> dict[str, object]:
        """Poll the event's live state every 0.3 s until ``condition`` holds."""
        state: dict[str, object] = {}
        for _ in range(attempts):
            try:
                state = self.live_state(event_id)
            except httpx.TransportError as error:
                # A Center just restarted listens before its web workers all serve;
                # seen refusing a connection once on a loaded machine: ask again.
                state = {"unreachable": str(error)}
            else:
                if condition(state):
                    return state
            self.staff.run(asyncio.sleep(0.3))
        raise AssertionError(f"{what} never happened: {state}\n{self.logs()}")

    def wait_ready(self, event_id: int, attempts: int = 150) -> dict[str, object]:
        """Wait until the event's tree is ready."""
        return self.wait_live(
            event_id, lambda state: state["state"] == "ready", "the tree ready", attempts
        )


def _townhall(*args: str) -> str:
    done = subprocess.run([*TOWNHALL, *args], capture_output=True, timeout=60, check=False)  # noqa: S603
    if done.returncode != 0:
        raise RuntimeError(f"townhall {' '.join(args)}: {done.stderr.decode(errors='replace')}")
    return done.stdout.decode().strip()


def _sysctl(namespace: str, setting: str) -> None:
    subprocess.run(  # noqa: S603
        ["ip", "netns", "exec", namespace, "sysctl", "-q", "-w", setting],  # noqa: S607
        check=True,
        capture_output=True,
        timeout=20,
    )


def _write_settings(work: Path) -> Path:
    """The shipped settings files of deploy/settings/, filled in for these machines: the
    Center's (read by the Center and the Controller) and each live server's."""
    data = work / "center"
    data.mkdir(mode=0o700)
    (data / "townhall.toml").write_text(
        render_settings(
            "center.toml",
            {
                "center_listen": f"{ADDRESS['center']}:{CENTER_PORT}",
                "public_url": PROXY_URL,
                "database_url": f"sqlite:///{data / 'townhall.db'}",
                "proxy_network": f"{ADDRESS['proxy']}/32",
                "smtp_url": "",
                "controller_listen": f"{ADDRESS['center']}:{CONTROLLER_PORT}",
            },
            # A faster pace than production's, so that trees form and failures show in seconds.
            {"tick_seconds": 0.3, "report_seconds": 0.5, "keepalive_seconds": 2},
        )
    )
    for name, _, _, zone, _ in SERVERS:
        folder = work / f"live-{name}"
        folder.mkdir(mode=0o700)
        (folder / "townhall.toml").write_text(
            render_settings(
                "live-dmz.toml" if zone == "dmz" else "live-internal.toml",
                {"public_url": PROXY_URL},
                {"report_seconds": 0.5},
            )
        )
    return data


@contextmanager
def deployed(topology: Topology, work: Path) -> Iterator[Deployment]:
    """Install and start everything; stop every process and loop afterwards, even on failure."""
    work.chmod(0o755)  # nginx runs as nobody and reads its folder here
    (work / "logs").mkdir()
    _chown_tree(work / "logs")
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
    ca = DevCA.ensure(settings.ca_dir)
    issued = ca.issue("proxy", [ADDRESS["proxy"]])
    (work / "tls").mkdir()
    ca_file = work / "tls" / "ca.pem"
    tls = (work / "tls" / "proxy.pem", work / "tls" / "proxy-key.pem")
    ca_file.write_bytes(ca.cert_file.read_bytes())
    tls[0].write_bytes(issued.cert_file.read_bytes())
    tls[1].write_bytes(issued.key_file.read_bytes())
    _chown_tree(work / "tls")

    daemons = Daemons()
    loops: list[HostLoop] = []
    try:
        staff = HostLoop(topology.namespaces["staff"])
        loops.append(staff)
        outside = HostLoop(topology.namespaces["outside"])
        loops.append(outside)

        def start(machine: str, name: str, *args: str) -> subprocess.Popen[bytes]:
            # SSL_CERT_FILE: the machine trusts the organisation's CA, as its system store would.
            return daemons.start(
                [
                    *topology.exec_prefix(machine),
                    "env",
                    f"SSL_CERT_FILE={ca_file}",
                    "PYTHONUNBUFFERED=1",
                    *TOWNHALL,
                    *args,
                ],  # fmt: skip
                work / "logs" / f"{name}.log",
                as_daemon_user=False,
            )

        def wait(process: subprocess.Popen[bytes], machine: str, port: int, log: str) -> None:
            wait_listening(
                staff, ADDRESS[machine], port, log,
                lambda: process.poll() is None, work / "logs" / f"{log}.log",
            )  # fmt: skip

        center_process = start("center", "center", "center", "--data", str(data))
        wait(center_process, "center", CENTER_PORT, "center")
        controller = start("center", "controller", "controller", "--data", str(data))
        wait(controller, "center", CONTROLLER_PORT, "controller")

        def make_tree() -> None:
            with center.client("ada") as admin:
                nodes = [{"server": name, "parent": parent} for name, *_, parent in SERVERS]
                tree = admin.post("/manager/api/v1/trees", json={"name": "site", "nodes": nodes})
                assert tree.status_code == 201, tree.text
                made = admin.post(f"/manager/api/v1/trees/{tree.json()['id']}/default")
                assert made.status_code == 200, made.text

        staff.call(make_tree)
        proxy = topology.namespaces["proxy"]
        # nginx runs as nobody: let it bind 443 on its machine (what CAP_NET_BIND_SERVICE
        # or a root master process gives it in an installation).
        _sysctl(proxy, "net.ipv4.ip_unprivileged_port_start=443")
        # No directory here: the tests' requests through the proxy carry API tokens.
        sign_in = _start_sign_in_service(daemons, work, 1, netns=proxy)
        _start_nginx(
            daemons, work, CENTER_URL, sign_in, tls, PROXY_PORT,
            host=ADDRESS["proxy"], source=ADDRESS["proxy"], netns=proxy,
        )  # fmt: skip
        wait_listening(
            staff, ADDRESS["proxy"], PROXY_PORT, "nginx",
            lambda: all(p.poll() is None for p in daemons.processes), work / "logs" / "nginx.log",
        )  # fmt: skip
        for name, machine, port, _, _ in SERVERS:
            # The DMZ server reaches the Manager only through the proxy, on its address and port.
            manager = PROXY_URL if name == "dmz" else CENTER_URL
            process = start(
                machine, name, "live", "--name", name, "--enroll-secret", secrets[name],
                "--manager", manager, "--data", str(work / f"live-{name}"),
            )  # fmt: skip
            wait(process, machine, port, name)
        yield Deployment(topology, work, center, staff, outside, daemons, ca_file)
    finally:
        daemons.stop()
        for loop in loops:
            loop.close()
        engine.dispose()


# -- failures, for tests/net/test_failover.py ------------------------------------------------


def process_of(
    deployment: Deployment, component: str, name: str | None = None
) -> subprocess.Popen[bytes]:
    """The running process of ``townhall component`` (a live server: with ``--name name``)."""
    for process in reversed(deployment.daemons.processes):
        argv = list(map(str, process.args))  # type: ignore[arg-type]
        if process.poll() is not None or component not in argv:
            continue
        at = argv.index(component)
        if argv[at - len(TOWNHALL) : at] != TOWNHALL:
            continue
        if name is None or argv[argv.index("--name") + 1] == name:
            return process
    raise LookupError(f"no running townhall {component} {name or ''}")


def kill(process: subprocess.Popen[bytes]) -> list[str]:
    """SIGKILL ``process`` and its children, as a crash of its machine would (no goodbye to
    anyone); the argv to start it again with."""
    signal_group(process, signal.SIGKILL)
    process.wait(timeout=20)
    argv = list(map(str, process.args))  # type: ignore[arg-type]
    for option in ("--enroll-secret", "--manager"):  # enrolled once is enough
        if option in argv:
            at = argv.index(option)
            del argv[at : at + 2]
    return argv


def start_again(
    deployment: Deployment, argv: list[str], log: str, machine: str, port: int
) -> subprocess.Popen[bytes]:
    """Start a killed process again, from the same argv, and wait until it listens."""
    process = deployment.daemons.start(
        argv, deployment.work / "logs" / f"{log}.log", as_daemon_user=False
    )
    wait_listening(
        deployment.staff, ADDRESS[machine], port, log,
        lambda: process.poll() is None, deployment.work / "logs" / f"{log}.log",
    )  # fmt: skip
    return process


CUT_TABLE = "townhall_cut"


def cut(topology: Topology, source: str, target: str) -> None:
    """Drop every packet between machines ``source`` and ``target`` in the router, both
    ways and established connections too, in a table of its own (``mend`` removes it)."""
    a, b = ADDRESS[source], ADDRESS[target]
    rules = (
        f"table inet {CUT_TABLE} {{\n"
        "  chain forward {\n"
        "    type filter hook forward priority -10; policy accept;\n"
        f"    ip saddr {a} ip daddr {b} drop\n"
        f"    ip saddr {b} ip daddr {a} drop\n"
        "  }\n"
        "}\n"
    )
    subprocess.run(  # noqa: S603
        [*topology.exec_prefix("router"), "nft", "-f", "-"],
        input=rules.encode(), check=True, capture_output=True, timeout=20,
    )  # fmt: skip


def mend(topology: Topology) -> None:
    """Remove what ``cut`` added (nothing if nothing was cut)."""
    subprocess.run(  # noqa: S603
        [*topology.exec_prefix("router"), "nft", "delete", "table", "inet", CUT_TABLE],
        capture_output=True, timeout=20, check=False,
    )  # fmt: skip
