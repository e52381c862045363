"""A whole Townhall on loopback for end-to-end tests: real processes, real TLS.

The Center runs in the test's process (tests/support.py); the Controller and
three live servers run as ``townhall controller`` and ``townhall live``
processes on the same data folder and database, as an organisation runs
them, so a test can kill one with SIGKILL and start it again. Participants
are ``townhall.client.Participant`` sessions in the test's event loop, each
recording what it receives (``Watcher``). The recorder service (``townhall
recorder``) starts as one more process on request (``start("recorder")``).
The helpers of the recording tests (a recorded event, a 440 Hz tone, a
``townhall record`` process, a file that grows) are here too, for the tests
that start a recorder by hand and those that leave it to the service.
Nothing is mocked.
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
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np

from tests.support import Center, free_port
from townhall.client.audio import SAMPLE_RATE, encode_opus, send_packets
from townhall.client.events import ChatReceived, ClientEvent, FloorChanged, Left, MediaReceived
from townhall.client.session import ClientSettings, Participant
from townhall.controller.identity import issue_local_identity
from townhall.ticket import TicketContents, open_ticket
from townhall.wire import Codec


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
            "[recorder]\n"
            "poll_seconds = 0.3\n"
            "restart_max_seconds = 2\n"
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
        """Start ``controller``, ``recorder`` or the live server ``name`` (again)."""
        if name in ("controller", "recorder"):
            args = [name]
        else:
            args = ["live", "--name", name]
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


# -- recorded events ---------------------------------------------------------------------------


def schedule_recorded(center: Center, title: str, *, recording: bool = True) -> int:
    """A public event under way now, scheduled by olga, with its recording setting as asked."""
    with center.client("olga") as olga:
        response = olga.post(
            "/api/v1/events",
            json={
                "title": title,
                "starts_at": datetime.now(UTC).isoformat(),
                "duration_minutes": 60,
                "visibility": "public",
                "recording": recording,
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def start_recorder(center: Center, event_id: int, folder: Path) -> subprocess.Popen[bytes]:
    """``townhall record`` by hand, with a recorder ticket olga asked for."""
    with center.client("olga") as olga:
        response = olga.post(f"/api/v1/events/{event_id}/recorder-ticket")
    assert response.status_code == 200, response.text
    ticket = folder / f"recorder-{event_id}.townhall"
    ticket.write_bytes(response.content)
    log = open(folder / f"recorder-{event_id}.log", "wb")  # noqa: SIM115 - the process keeps it
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-m", "townhall.cli", "record", str(ticket),
         "--data", str(center.settings.data)],  # fmt: skip
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    log.close()
    return process


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.4 * 32767 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)


PEOPLE = ("olga", "mike", "pia")


def recorders(watcher: Watcher) -> set[str]:
    """The roster's names that are none of the test's people: the recorders."""
    return set(watcher.participant.roster) - set(PEOPLE)


async def everyone_with_recorder(
    system: LiveSystem, center: Center, event_id: int
) -> tuple[Watcher, Watcher, Watcher]:
    """Olga (main), Mike (child-a) and Pia (DMZ) joined, a recorder among them, Mike on
    the floor."""
    with center.client("olga") as api:
        # Five processes starting at once on a loaded machine: a bound, not a pace.
        await system.wait_state(api, event_id, "ready", timeout=120)
    olga = Watcher(ticket_for(center, "olga", event_id), "main")
    mike = Watcher(ticket_for(center, "mike", event_id), "child-a")
    pia = Watcher(ticket_for(center, "pia", event_id), "child-dmz")
    for watcher in (olga, mike, pia):
        await watcher.participant.join()
    # Three people and the recorder, whichever server it chose.
    await olga.wait_for(lambda: len(olga.participant.roster) == 4, "the recorder", timeout=30)
    olga.participant.give_floor("mike")
    await mike.wait_for(
        lambda: any(isinstance(e, FloorChanged) and e.holder == "mike" for e in mike.events),
        "the floor",
    )
    return olga, mike, pia


async def stream_tone(mike: Watcher, seconds: float, stream: int | None = None) -> int:
    """The tone on ``stream`` (a new microphone stream if None); the stream's id."""
    if stream is None:
        stream = await mike.participant.open_stream(Codec.OPUS)
    packets = encode_opus(tone(seconds))
    await send_packets(lambda p, ts: mike.participant.send_media(stream, p, ts), packets)
    return stream


def grown_to(path: Path, size: int, timeout: float = 30) -> None:
    """Until the file the recorder writes holds ``size`` bytes."""
    deadline = time.monotonic() + timeout
    while not path.exists() or path.stat().st_size < size:
        if time.monotonic() > deadline:
            found = path.stat().st_size if path.exists() else "no"
            raise AssertionError(f"{path} stayed at {found} bytes")
        time.sleep(0.1)


def appeared(path: Path, timeout: float = 30) -> None:
    """Until ``path`` exists (a recorder's summary, written when it finishes)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.1)


async def wait_exit(process: subprocess.Popen[bytes], timeout: float = 30) -> int:  # noqa: ASYNC109
    return await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)


async def end_after_a_last_word(olga: Watcher, mike: Watcher, word: str) -> None:
    """Mike says ``word``; once olga has it (so the media before it went through), she
    ends the event and sees it end."""
    mike.participant.say(word)
    await olga.wait_for(
        lambda: any(isinstance(e, ChatReceived) and e.text == word for e in olga.events),
        f"mike's {word!r}",
    )
    olga.participant.end_event()
    await olga.wait_for(lambda: olga.left() is not None, "the end")
