"""The whole system on one machine: what ``townhall up`` prepares and runs.

``townhall up`` is the newcomer's first command, so it must leave a working
event behind with no questions asked. This module holds the embedded
defaults it writes through each component's own functions (never their
tables): three live servers in the Manager (``main``, ``child-a`` and
``child-dmz`` in zone ``dmz``) with the one-machine tree as default, a public
demo event under way, and a moderator ticket for it; then it starts the
Controller, the three live servers and the recorder service (``townhall
recorder``: events whose recording is on are recorded) as child processes of
``up`` and stops them when the web process stops. Metrics are on at known
loopback addresses (``metrics_addresses``; the Center's ``/metrics`` with a
token made once, ``metrics_token``). Real deployments run each part with its own
command (docs/install.md).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from townhall.center import events
from townhall.center.events import Links
from townhall.center.tables import Event, User
from townhall.config import Settings
from townhall.manager import registry
from townhall.store.conventions import now_utc
from townhall.wire.names import Zone

DEMO_TITLE = "Welcome to Townhall"
DEMO_HOURS = 12
DEMO_TICKET = "demo.townhall"
TREE_NAME = "one-machine"


DEFAULT_LIVE_PORT = 9443
# The names the development certificates of the local live servers carry: a browser
# trusting the development CA accepts its live port under either (docs/install.md).
LOCAL_CERT_HOSTS = ("127.0.0.1", "localhost")


# The Controller's Prometheus metrics; the live servers' are on the next ports, in order.
DEFAULT_METRICS_PORT = 9460
METRICS_TOKEN = "metrics-token"  # noqa: S105 - the file's name, not a token


@dataclass(frozen=True, slots=True)
class LocalServer:
    name: str
    port_offset: int  # from the first live port (9443 by default)
    zone: Zone
    parent: str | None


LOCAL_SERVERS = (
    LocalServer("main", 0, Zone.INTERNAL, None),
    LocalServer("child-a", 1, Zone.INTERNAL, "main"),
    LocalServer("child-dmz", 2, Zone.DMZ, "main"),
)


def ensure_live_servers(
    session: Session, host: str = "127.0.0.1", first_port: int = DEFAULT_LIVE_PORT
) -> None:
    """Register the three local servers and make their tree the default, once.

    An administrator's changes win: a server that exists is left as it is, and
    the tree is only made default when no tree is.
    """
    for server in LOCAL_SERVERS:
        if registry.server_by_name(session, server.name) is None:
            port = first_port + server.port_offset
            registry.create_server(
                session,
                registry.ServerIn(name=server.name, host=host, port=port, zone=server.zone),
            )
    if registry.default_tree(session) is None:
        tree = next((t for t in registry.list_trees(session) if t.name == TREE_NAME), None)
        if tree is None:
            nodes = [registry.NodeIn(server=s.name, parent=s.parent) for s in LOCAL_SERVERS]
            tree = registry.create_tree(session, registry.TreeIn(name=TREE_NAME, nodes=nodes))
        registry.make_default(session, tree)


def ensure_demo_event(session: Session, settings: Settings, organizer_name: str) -> int:
    """The id of a public demo event under way now, scheduled if there is none."""
    now = now_utc()
    existing = session.scalar(
        select(Event.id)
        .where(Event.title == DEMO_TITLE, Event.status == "scheduled")
        .where(Event.starts_at <= now, Event.ends_at > now + timedelta(hours=1))
        .order_by(Event.starts_at.desc())
        .limit(1)
    )
    if existing is not None:
        return existing
    organizer = session.scalar(select(User).where(User.username == organizer_name))
    if organizer is None:
        raise LookupError(f"no user {organizer_name}")
    base_url = settings.center.public_url
    event = events.create_event(
        session,
        organizer,
        events.EventIn(
            title=DEMO_TITLE,
            description="A demo event made by `townhall up`: join it with `townhall join`.",
            starts_at=datetime.now(UTC).replace(second=0, microsecond=0),
            duration_minutes=DEMO_HOURS * 60,
            kind="meeting",
            visibility="public",
        ),
        Links(base_url=base_url, join_link=lambda registration: base_url),
        settings.center.mail.sender,
        settings.center.default_timezone,
    )
    return event.id


def metrics_addresses(settings: Settings, first_port: int) -> dict[str, str]:
    """Where the Controller and each local live server serve their metrics: the settings'
    address if one is set, else 127.0.0.1 from ``first_port`` on."""
    addresses = {"controller": settings.controller.metrics_listen or f"127.0.0.1:{first_port}"}
    for server in LOCAL_SERVERS:
        default = f"127.0.0.1:{first_port + 1 + server.port_offset}"
        addresses[server.name] = settings.live.metrics_listen.get(server.name) or default
    return addresses


def metrics_token(data: Path) -> str:
    """The bearer token of the Center's ``/metrics``, made once and kept in ``data``."""
    path = data / METRICS_TOKEN
    if path.exists():
        token = path.read_text().strip()
        if token:
            return token
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(token + "\n")
    return token


def live_command(settings: Settings, config: Path | None, *args: str) -> list[str]:
    """The ``townhall`` command line for a child process with the same data and settings."""
    command = [sys.executable, "-m", "townhall.cli", *args, "--data", str(settings.data)]
    if config is not None:
        command += ["--config", str(config)]
    return command


@contextlib.contextmanager
def running(
    commands: dict[str, list[str]], log_dir: Path
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Run each named command as a child process logging to ``log_dir/<name>.log``;
    stop them all on exit (SIGTERM, then SIGKILL after 10 s)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[bytes]] = []
    stopping = threading.Event()
    try:
        for name, command in commands.items():
            with open(log_dir / f"{name}.log", "ab") as log:
                processes.append(
                    subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)  # noqa: S603
                )
        watcher = threading.Thread(
            target=_report_stopped,
            args=(dict(zip(commands, processes, strict=True)), log_dir, stopping),
            name="onebox-watch",
            daemon=True,
        )
        watcher.start()
        yield processes
    finally:
        stopping.set()
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _report_stopped(
    children: dict[str, subprocess.Popen[bytes]], log_dir: Path, stopping: threading.Event
) -> None:
    """Say on stderr when a child stops before ``up`` does: a live server that could not
    bind its port would otherwise vanish with only its own log knowing why."""
    waiting = dict(children)
    while waiting and not stopping.wait(0.5):
        for name, process in list(waiting.items()):
            code = process.poll()
            if code is not None and not stopping.is_set():
                del waiting[name]
                print(
                    f"townhall up: {name} stopped (exit code {code}); "
                    f"its log is {log_dir / f'{name}.log'}",
                    file=sys.stderr,
                    flush=True,
                )
