"""A whole Townhall on loopback for end-to-end tests: real processes, real TLS.

The Center runs in the test's process (tests/support.py); the Controller and
three live servers run as ``townhall controller`` and ``townhall live``
processes on the same data folder and database, as an organisation runs
them, so a test can kill one with SIGKILL and start it again. Participants
are ``townhall.client.Participant`` sessions in the test's event loop, each
recording what it receives (``Watcher``). Nothing is mocked.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

from tests.support import Center, free_port
from townhall.client.events import ChatReceived, ClientEvent, Left, MediaReceived
from townhall.client.session import ClientSettings, Participant
from townhall.controller.identity import issue_local_identity
from townhall.ticket import TicketContents, open_ticket


@dataclass(frozen=True, slots=True)
class ServerSpec:
    name: str
    zone: str
    parent: str | None


TREE = (
    ServerSpec("main", "internal", None),
    ServerSpec("child-a", "internal", "main"),
    ServerSpec("child-dmz", "dmz", "main"),
)


@dataclass
class LiveSystem:
    """The Controller and the live servers of ``TREE`` as processes, beside ``center``."""

    center: Center
    data: Path
    ports: dict[str, int]
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    extra_args: dict[str, list[str]] = field(default_factory=dict)  # by process name
    tree: tuple[ServerSpec, ...] = TREE

    @classmethod
    def prepare(
        cls, center: Center, data: Path, tree: tuple[ServerSpec, ...] = TREE
    ) -> LiveSystem:
        """Register ``tree`` in the Manager and write the settings the processes read."""
        ports = {spec.name: free_port() for spec in tree}
        ports["controller"] = free_port()
        (data / "townhall.toml").write_text(
            "[center]\n"
            f'database_url = "{center.settings.database_url}"\n'
            "[controller]\n"
            f'listen = "127.0.0.1:{ports["controller"]}"\n'
            "tick_seconds = 0.3\n"
            "report_seconds = 0.5\n"
            "keepalive_seconds = 2\n"
        )
        with center.client("ada") as admin:
            for spec in tree:
                response = admin.post(
                    "/manager/api/v1/servers",
                    json={
                        "name": spec.name,
                        "host": "127.0.0.1",
                        "port": ports[spec.name],
                        "zone": spec.zone,
                    },
                )
                assert response.status_code == 201, response.text
            nodes = [{"server": s.name, "parent": s.parent} for s in tree]
            made = admin.post("/manager/api/v1/trees", json={"name": "e2e", "nodes": nodes})
            assert made.status_code == 201, made.text
            made = admin.post(f"/manager/api/v1/trees/{made.json()['id']}/default")
            assert made.status_code == 200, made.text
        for spec in tree:
            issue_local_identity(center.settings, spec.name, ["127.0.0.1"])
        return cls(center, data, ports, tree=tree)

    def start(self, name: str) -> None:
        """Start ``controller`` or the live server ``name`` (again)."""
        args = ["controller"] if name == "controller" else ["live", "--name", name]
        args += self.extra_args.get(name, [])
        log = open(self.data / f"{name}.log", "ab")  # noqa: SIM115 - the process keeps it
        self.processes[name] = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "townhall.cli", *args, "--data", str(self.data)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        log.close()

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(name)
        process.send_signal(sig)
        process.wait(timeout=20)

    def stop_all(self) -> None:
        for name in list(self.processes):
            self.kill(name, signal.SIGTERM)

    def logs(self) -> str:
        return "\n".join(
            f"== {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.data.glob("*.log"))
        )

    def live(self, client: httpx.Client, event_id: int) -> dict[str, object]:
        response = client.get(f"/api/v1/events/{event_id}")
        assert response.status_code == 200, response.text
        live = response.json()["live"]
        assert isinstance(live, dict)
        return live

    async def wait_state(
        self, client: httpx.Client, event_id: int, state: str, timeout: float = 40  # noqa: ASYNC109
    ) -> dict[str, object]:
        """Poll the Center's API until the event's tree reports ``state``."""
        deadline = time.monotonic() + timeout
        live: dict[str, object] = {}
        while time.monotonic() < deadline:
            live = await asyncio.to_thread(self.live, client, event_id)
            if live["state"] == state:
                return live
            await asyncio.sleep(0.3)
        raise AssertionError(f"the tree never became {state}: {live}\n{self.logs()}")


def ticket_for(center: Center, username: str, event_id: int) -> TicketContents:
    """A join ticket from the Center's API, as the user's application gets it."""
    with center.client(username) as client:
        response = client.post(f"/api/v1/events/{event_id}/ticket")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.townhall.ticket"
    return open_ticket(response.content, center_public_key=None, now=int(time.time()))


class Watcher:
    """A participant and everything it received, with a way to wait for something."""

    def __init__(self, ticket: TicketContents, server: str | None = None) -> None:
        self.events: list[ClientEvent] = []
        self.media: list[tuple[MediaReceived, float]] = []
        self._changed = asyncio.Event()
        settings = ClientSettings(rejoin_delay=0.2, rejoin_tries=8)
        self.participant = Participant(
            ticket, server=server, settings=settings, on_event=self._record
        )

    def _record(self, event: ClientEvent) -> None:
        if isinstance(event, MediaReceived):
            self.media.append((event, asyncio.get_running_loop().time()))
        else:
            self.events.append(event)
        self._changed.set()

    async def wait_for(
        self, check: Callable[[], object], what: str, timeout: float = 20  # noqa: ASYNC109
    ) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not check():
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{self.participant.name}: never saw {what}: {self.events}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    def chat(self) -> list[tuple[str, str]]:
        return [(e.sender, e.text) for e in self.events if isinstance(e, ChatReceived)]

    def left(self) -> Left | None:
        return next((e for e in self.events if isinstance(e, Left)), None)


async def chat_settled(people: dict[str, Watcher], sender: str) -> None:
    """Wait until everything said before now has reached everyone it will reach.

    ``sender`` posts a fresh public marker; chat has one order for everybody
    (the main server numbers it), so once each watcher has the marker, each
    has had its chance at every earlier message: a leak or a duplicate would
    have arrived by then. No sleeping and hoping.
    """
    marker = f"marker {next(_markers)}"
    people[sender].participant.say(marker)
    for watcher in people.values():
        await watcher.wait_for(lambda w=watcher: (sender, marker) in w.chat(), marker, timeout=30)


_markers = itertools.count(1)


def dominant_frequency(pcm: np.ndarray, rate: int) -> float:
    """The strongest frequency of the loudest second of ``pcm``."""
    samples = pcm.astype(np.float64)
    window = min(len(samples), rate)
    energy = np.convolve(samples**2, np.ones(window), mode="valid")
    start = int(np.argmax(energy))
    part = samples[start : start + window] * np.hanning(window)
    spectrum = np.abs(np.fft.rfft(part))
    return float(np.fft.rfftfreq(window, 1 / rate)[int(np.argmax(spectrum))])


def running_system(system: LiveSystem) -> Iterator[LiveSystem]:
    for name in ("controller", *(spec.name for spec in system.tree)):
        system.start(name)
    try:
        yield system
    finally:
        system.stop_all()
