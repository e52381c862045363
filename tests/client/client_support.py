"""Live servers for the participant's tests: a real room over real TLS on 127.0.0.1:0.

``RoomServer`` is a small asyncio shell around the live server's own sans-IO
core (``EventRoom`` run by a ``Dispatcher``): the real protocol, admission,
floor, chat log and cascade, with a TLS listener (ALPN ``townhall/1``), the
link Up to a parent, wakeups and keepalive timers. It stands in for
``townhall.live.server.LiveServer`` until that lands, and lets a test kill a
server outright (no Bye) to see the participant rejoin elsewhere.
``Issuer`` plays the Center: credentials, tickets listing the test servers,
and the Controller's assignments.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import math
import ssl
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from townhall.client import ChatReceived, ClientEvent, ClientSettings, Participant
from townhall.live import (
    AssignmentReceived,
    CloseConnection,
    ConnectUpstream,
    Dispatcher,
    EventRoom,
    RequestWakeup,
    RoomSettings,
    ServerRole,
    TimerFired,
)
from townhall.pki import DevCA, IssuedCertificate
from townhall.ticket import (
    Credential,
    ServerEntry,
    TicketContents,
    Zone,
    generate_event_key,
    issue_ticket,
    open_ticket,
    spki_sha256,
)
from townhall.ticket import Role as TicketRole
from townhall.wire import ALPN

EVENT_ID = 42
LINK_SECRET = "s" * 24


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass
class Issuer:
    """The Center and the Controller of one event, as far as the tests need them."""

    ca: DevCA
    signing_key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    event_key: bytes = field(default_factory=generate_event_key)
    credentials: dict[str, Credential] = field(default_factory=dict)
    center_url: str = "https://center.test/"

    def credential(self, username: str, role: TicketRole = TicketRole.PARTICIPANT) -> Credential:
        credential = Credential.new(username=username, display_name=username.title(), role=role)
        self.credentials[credential.credential_id] = credential
        return credential

    def ticket_bytes(
        self,
        credential: Credential,
        servers: Sequence[ServerEntry],
        *,
        ca: bool = True,
        cookies: dict[str, str] | None = None,
        lifetime: int = 600,
    ) -> bytes:
        return issue_ticket(
            signing_key=self.signing_key,
            event_key=self.event_key,
            event_id=EVENT_ID,
            title="All hands",
            center_url=self.center_url,
            servers=servers,
            credential=credential,
            now=int(time.time()),
            lifetime=lifetime,
            ca_pem=self.ca.cert_file.read_text() if ca else None,
            cookies=cookies,
        )

    def ticket(
        self, credential: Credential, servers: Sequence[ServerEntry], **options: object
    ) -> TicketContents:
        data = self.ticket_bytes(credential, servers, **options)  # type: ignore[arg-type]
        return open_ticket(
            data, center_public_key=self.signing_key.public_key(), now=int(time.time())
        )

    def assignment(
        self,
        role: ServerRole = ServerRole.MAIN,
        *,
        parent: str | None = None,
        children: Sequence[str] = (),
    ) -> AssignmentReceived:
        return AssignmentReceived(
            event_id=EVENT_ID,
            title="All hands",
            role=role,
            credentials={cid: c.secret_sha256 for cid, c in self.credentials.items()},
            event_keys=(self.event_key,),
            parent=parent,
            link_secret=LINK_SECRET if role is ServerRole.CHILD else None,
            children={name: sha256_hex(LINK_SECRET) for name in children},
        )


def server_context(certificate: IssuedCertificate) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate.cert_file, certificate.key_file)
    context.set_alpn_protocols([ALPN])
    return context


class _Pipe(asyncio.Protocol):
    def __init__(self, server: RoomServer, conn: str, *, upstream: bool = False) -> None:
        self.server, self.conn, self.upstream = server, conn, upstream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.server.transports[self.conn] = transport  # type: ignore[assignment]
        if not self.upstream:
            self.server.dispatcher.accept(self.conn, time.time())
            self.server.pump()

    def data_received(self, data: bytes) -> None:
        self.server.received += len(data)
        self.server.dispatcher.receive(self.conn, data, time.time())
        self.server.pump()

    def eof_received(self) -> bool | None:
        self.server.dispatcher.receive(self.conn, b"", time.time())
        self.server.pump()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.transports.pop(self.conn, None)
        self.server.dispatcher.lost(self.conn, time.time())
        self.server.pump()


class RoomServer:
    """One live server of the event: an ``EventRoom`` over asyncio TLS on 127.0.0.1:0."""

    def __init__(
        self,
        name: str,
        issuer: Issuer,
        *,
        zone: Zone = Zone.INTERNAL,
        capacity: int = 0,
        certificate: IssuedCertificate | None = None,
    ) -> None:
        self.name = name
        self.zone = zone
        self.issuer = issuer
        certificate = certificate or issuer.ca.issue(name, ["127.0.0.1", "localhost"])
        self.certificate = certificate
        self._server_ssl = server_context(certificate)
        self._upstream_ssl = ssl.create_default_context(cafile=str(issuer.ca.cert_file))
        self._upstream_ssl.set_alpn_protocols([ALPN])
        self.room = EventRoom(
            RoomSettings(
                server_name=name,
                center_public_key=issuer.signing_key.public_key(),
                capacity=capacity,
                request_burst=10_000,
            ),
            jitter=lambda: 0.0,
        )
        self.dispatcher = Dispatcher(self.room)
        self.transports: dict[str, asyncio.Transport] = {}
        self.received = 0  # bytes read from every connection, TLS stripped
        self.port = 0
        self._ids = itertools.count(1)
        self._listener: asyncio.Server | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._handles: list[asyncio.TimerHandle] = []

    async def start(self) -> RoomServer:
        loop = asyncio.get_running_loop()
        self._listener = await loop.create_server(
            lambda: _Pipe(self, f"{self.name}<{next(self._ids)}"),
            "127.0.0.1",
            0,
            ssl=self._server_ssl,
        )
        self.port = self._listener.sockets[0].getsockname()[1]
        self._ticker = loop.create_task(self._tick())
        return self

    def entry(self, *, zone: Zone | None = None, pins: Sequence[str] = ()) -> ServerEntry:
        return ServerEntry(
            name=self.name,
            host="127.0.0.1",
            port=self.port,
            zone=zone or self.zone,
            spki_sha256=tuple(pins),
        )

    @property
    def pin(self) -> str:
        return spki_sha256(self.certificate.cert_file.read_bytes())

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def assign(self, assignment: AssignmentReceived) -> None:
        self.dispatcher.handle(assignment, time.time())
        self.pump()

    def pump(self) -> None:
        for _ in range(1000):
            moved = False
            self.dispatcher.end_pass(time.time())
            for conn in self.dispatcher.ready():
                transport = self.transports.get(conn)  # type: ignore[call-overload]
                data = self.dispatcher.drain(conn, time.time())
                if transport is not None and data:
                    transport.write(data)
                    moved = True
            for action in self.dispatcher.take_actions():
                moved = True
                match action:
                    case CloseConnection(conn=conn):
                        data = self.dispatcher.drain(conn, time.time())
                        transport = self.transports.get(conn)  # type: ignore[call-overload]
                        if transport is not None:
                            if data:
                                transport.write(data)
                            transport.close()
                        self.dispatcher.lost(conn, time.time())
                    case ConnectUpstream(address=address):
                        task = asyncio.get_running_loop().create_task(self._connect_up(address))
                        self._tasks.add(task)
                        task.add_done_callback(self._tasks.discard)
                    case RequestWakeup(at=at):
                        self._handles.append(
                            asyncio.get_running_loop().call_later(
                                max(0.0, at - time.time()), self._wake
                            )
                        )
            if not moved:
                return

    def _wake(self) -> None:
        self.dispatcher.handle(TimerFired(), time.time())
        self.pump()

    async def _connect_up(self, address: str) -> None:
        host, port = address.rsplit(":", 1)
        conn = f"{self.name}>up#{next(self._ids)}"
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(3):
                await loop.create_connection(
                    lambda: _Pipe(self, conn, upstream=True),
                    host,
                    int(port),
                    ssl=self._upstream_ssl,
                    server_hostname=host,
                )
        except (OSError, TimeoutError):
            self.dispatcher.upstream_failed(time.time())
        else:
            self.dispatcher.upstream_connected(conn, time.time())
        self.pump()

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            now = time.time()
            for conn in list(self.transports):
                due = self.dispatcher.timer(conn)
                if due is not None and due <= now:
                    self.dispatcher.handle_timer(conn, now)
            self.pump()

    def kill(self) -> None:
        """Die at once: stop listening and drop every connection without a Bye."""
        if self._listener is not None:
            self._listener.close()
        for handle in self._handles:
            handle.cancel()
        for task in (*self._tasks, *([self._ticker] if self._ticker else [])):
            task.cancel()
        for transport in list(self.transports.values()):
            transport.abort()

    async def close(self) -> None:
        self.kill()
        if self._listener is not None:
            with contextlib.suppress(asyncio.TimeoutError):
                async with asyncio.timeout(2):
                    await self._listener.wait_closed()
        await asyncio.sleep(0)


async def start_tree(issuer: Issuer, *children: tuple[str, Zone]) -> list[RoomServer]:
    """A main server (internal) and children of it, assigned the event and linked Up."""
    main = await RoomServer("main", issuer).start()
    servers = [main]
    for name, zone in children:
        servers.append(await RoomServer(name, issuer, zone=zone).start())
    main.assign(issuer.assignment(ServerRole.MAIN, children=[name for name, _ in children]))
    for child in servers[1:]:
        child.assign(issuer.assignment(ServerRole.CHILD, parent=main.address))
    for child in servers[1:]:
        await wait_for(lambda child=child: child.room.upstream.value == "up")
    return servers


async def wait_for(condition: object, *, within: float = 10.0) -> None:
    """Until ``condition()`` is true (polled); fails after ``within`` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while not condition():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the condition did not come true in time")
        await asyncio.sleep(0.02)


def sine_wav(
    path: Path,
    *,
    frequency: float = 440.0,
    seconds: float = 1.0,
    rate: int = 44_100,
    channels: int = 2,
) -> Path:
    samples = np.arange(round(seconds * rate)) / rate
    tone = (np.sin(2 * math.pi * frequency * samples) * 12_000).astype(np.int16)
    data = np.repeat(tone.reshape(-1, 1), channels, axis=1)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(data.astype("<i2").tobytes())
    return path


def dominant_frequency(pcm: np.ndarray, rate: int = 48_000) -> float:
    spectrum = np.abs(np.fft.rfft(pcm.astype(np.float64) * np.hanning(len(pcm))))
    spectrum[0] = 0
    return float(np.argmax(spectrum) * rate / len(pcm))


# Quick to give up and to rejoin: the tests run on loopback.
FAST = ClientSettings(probe_timeout=2.0, rejoin_delay=0.05, rejoin_tries=4)


class Watcher:
    """Collects a participant's events as they come, so a test can wait for one."""

    def __init__(self, participant: Participant) -> None:
        self.participant = participant
        self.events: list[ClientEvent] = []
        self._task = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for event in self.participant:
            self.events.append(event)

    def of(self, kind: type) -> list:  # type: ignore[type-arg]
        return [event for event in self.events if isinstance(event, kind)]

    async def wait(self, check: Callable[[ClientEvent], bool]) -> ClientEvent:
        seen = 0
        async with asyncio.timeout(10):
            while True:
                for event in self.events[seen:]:
                    if check(event):
                        return event
                seen = len(self.events)
                await asyncio.sleep(0.01)

    def chats(self) -> list[tuple[str, str]]:
        return [(c.sender, c.text) for c in self.of(ChatReceived)]

    async def stop(self) -> None:
        if self.participant.left is None:
            await self.participant.leave()
        async with asyncio.timeout(5):
            await self._task
