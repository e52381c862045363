"""Real TLS on 127.0.0.1 for the ``LiveServer`` tests: certificates, servers and a raw client.

``Pki`` makes a development CA and the servers' certificates in a temporary
folder; ``running`` starts a ``LiveServer`` on port 0 and closes it after;
``WireClient`` is a participant (or a would-be server link) speaking
``townhall.wire`` over an asyncio ``Protocol``: it says Hello, answers Welcome
with Auth and Ping with Pong, and records what it receives, so a test awaits
``client.wait_for(...)`` a condition (never a duration: the timeout is only a
guard against a hang). Tickets come from ``live_support.Center``.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import ssl
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from tests.live.live_support import Center
from townhall.live import ServerRole
from townhall.live.server import LiveServer
from townhall.live.tls import server_ssl_context, upstream_ssl_context
from townhall.pki import DevCA
from townhall.wire import (
    NEED_DATA,
    Auth,
    AuthFailed,
    AuthOk,
    Bye,
    ByeReason,
    ChatPosted,
    Codec,
    Connection,
    ConnectionClosed,
    EncodedMessage,
    Error,
    Hello,
    MediaFrame,
    Member,
    Message,
    OpenStream,
    Ping,
    Pong,
    RemoteProtocolError,
    Role,
    RosterUpdate,
    SendChat,
    Side,
    State,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamOpened,
    TakeFloor,
    Welcome,
)

HOST = "127.0.0.1"
GUARD = 10.0  # seconds before a wait is declared hung


class Pki:
    """A development CA in ``folder`` and certificates for 127.0.0.1."""

    def __init__(self, folder: Path) -> None:
        self.ca = DevCA.ensure(folder / "pki")

    def server_ssl(self, name: str) -> ssl.SSLContext:
        issued = self.ca.issue(name, [HOST], client=True)
        return server_ssl_context(issued.cert_file, issued.key_file)

    def upstream_ssl(self, name: str) -> ssl.SSLContext:
        issued = self.ca.issue(name, [HOST], client=True)
        return upstream_ssl_context(self.ca.cert_file, issued.cert_file, issued.key_file)

    def client_ssl(self, alpn: list[str] | None = None) -> ssl.SSLContext:
        context = upstream_ssl_context(self.ca.cert_file)
        if alpn is not None:
            context.set_alpn_protocols(alpn)
        return context


@asynccontextmanager
async def running(pki: Pki, name: str, **options: Any) -> AsyncIterator[LiveServer]:
    server = LiveServer(
        name=name,
        host=HOST,
        port=options.pop("port", 0),
        server_ssl=pki.server_ssl(name),
        upstream_ssl=pki.upstream_ssl(name),
        **options,
    )
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def eventually(predicate: Callable[[], bool], what: str) -> None:
    """Poll ``predicate`` (server state has no events to await) until it holds."""
    deadline = time.monotonic() + GUARD
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"never happened: {what}")
        await asyncio.sleep(0.005)


def sealed(issuer: Center, username: str, **options: Any) -> bytes:
    credential = next(c for c in issuer.credentials.values() if c.username == username)
    return issuer.sealed(credential, options.pop("now", time.time()), **options)


def credential_id(issuer: Center, username: str) -> str:
    return next(c.credential_id for c in issuer.credentials.values() if c.username == username)


class WireClient(asyncio.Protocol):
    """One client connection and what it has seen."""

    def __init__(
        self,
        label: str,
        ticket: bytes,
        *,
        role: Role = Role.PARTICIPANT,
        auto_auth: bool = True,
        hello: bool = True,
        answer_pings: bool = True,
    ) -> None:
        self.label = label
        self.ticket = ticket
        self.role = role
        self.auto_auth = auto_auth
        self.say_hello = hello
        self.answer_pings = answer_pings
        self.pings = 0
        self.conn = Connection(Side.CLIENT, now=time.time())
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()  # every byte received
        self.welcome: Welcome | None = None
        self.auth: AuthOk | AuthFailed | None = None
        self.name: str | None = None
        self.closed: ConnectionClosed | None = None
        self.eof = False  # the transport closed
        self.protocol_error: RemoteProtocolError | None = None
        self.messages: list[Message] = []
        self.chats: list[ChatPosted] = []
        self.pongs: list[Pong] = []
        self.errors: list[Error] = []
        self.roster: dict[str, Member] = {}
        self.streams: dict[int, StreamInfo] = {}
        self.media: list[MediaFrame] = []
        self._chat_seq = itertools.count(1)
        self._media_seq = itertools.count(0)
        self._changed = asyncio.Event()

    def __repr__(self) -> str:
        return f"WireClient({self.label})"

    # -- asyncio.Protocol --------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        if self.say_hello:
            self.send(Hello(role=self.role, version=1, client="tests-live-server/1"))

    def data_received(self, data: bytes) -> None:
        self.raw += data
        self._receive(data)
        self._changed.set()

    def eof_received(self) -> bool | None:
        self._receive(b"")
        self._changed.set()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self._changed.set()

    # -- reading -----------------------------------------------------------------------

    def _receive(self, data: bytes) -> None:
        if self.protocol_error is not None or self.conn.state is State.CLOSED:
            return
        self.conn.receive_data(data, time.time())
        while True:
            try:
                event = self.conn.next_event()
            except RemoteProtocolError as exc:
                self.protocol_error = exc
                return
            if event is NEED_DATA:
                return
            if isinstance(event, ConnectionClosed):
                self.closed = event
                return
            if isinstance(event, MediaFrame):
                self.media.append(event)
                continue
            self.messages.append(event)
            self._note(event)

    def _note(self, message: Message) -> None:
        match message:
            case Welcome():
                self.welcome = message
                if self.auto_auth:
                    self.authenticate()
            case AuthOk():
                self.auth, self.name = message, message.name
            case AuthFailed():
                self.auth = message
            case Ping():
                self.pings += 1
                if self.answer_pings:
                    self.send(message.pong())
            case Pong():
                self.pongs.append(message)
            case ChatPosted():
                self.chats.append(message)
            case Error():
                self.errors.append(message)
            case RosterUpdate():
                for name in message.left:
                    self.roster.pop(name, None)
                for member in message.changed:
                    self.roster[member.name] = member
            case StateSnapshot():
                self.streams = {info.stream_id: info for info in message.streams}
            case StreamOpened(stream=info):
                self.streams[info.stream_id] = info
            case StreamClosed(stream_id=stream_id):
                self.streams.pop(stream_id, None)

    async def wait_for(self, predicate: Callable[[], bool], what: str = "") -> None:
        deadline = asyncio.get_running_loop().time() + GUARD
        while not predicate():
            self._changed.clear()
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise AssertionError(f"{self.label} never saw {what or predicate}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                pass

    async def closed_by_server(self) -> None:
        await self.wait_for(lambda: self.eof, "its connection closed")

    # -- writing ----------------------------------------------------------------------

    def send(self, item: Message | EncodedMessage | MediaFrame) -> None:
        self.write_wire(self.conn.send(item))

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def write_wire(self, data: bytes) -> None:
        """Write wire frames (whole ones) the way this client's transport carries them."""
        assert self.transport is not None
        self.transport.write(data)

    def authenticate(self) -> None:
        self.send(Auth(ticket=self.ticket))

    def chat(self, text: str, to: str | None = None) -> None:
        self.send(SendChat(text=text, to=to, seq=next(self._chat_seq)))

    def public_chat(self) -> list[tuple[str, str]]:
        return [(c.sender, c.text) for c in self.chats if c.to is None]

    def open_stream(self, codec: Codec = Codec.OPUS) -> None:
        self.send(OpenStream(codec=codec))

    def my_stream(self, codec: Codec = Codec.OPUS) -> int | None:
        for info in self.streams.values():
            if info.owner == self.name and info.codec is codec:
                return info.stream_id
        return None

    def speak(self, count: int = 1, *, size: int = 160, clocked: bool = False) -> None:
        """``count`` AUDIO frames on this client's Opus stream, in one write. Their
        timestamps are their numbers, or with ``clocked`` the monotonic clock's
        microseconds, as a real speaker's: a test that speaks for longer than the
        server's ``max_media_age`` needs them, or the server finds its frames late."""
        stream_id = self.my_stream()
        assert stream_id is not None, f"{self.label} has no stream"
        assert self.transport is not None
        data = bytearray()
        for _ in range(count):
            seq = next(self._media_seq)
            frame = MediaFrame.build(
                Codec.OPUS.channel,
                stream_id=stream_id,
                seq=seq,
                timestamp_us=time.monotonic_ns() // 1000 if clocked else seq,
                payload=seq.to_bytes(4, "big") * (size // 4),
            )
            data += self.conn.send(frame)
        self.write_wire(bytes(data))

    def media_from(self, stream_id: int) -> list[int]:
        return [f.seq for f in self.media if f.stream_id == stream_id]

    def leave(self) -> None:
        self.send(Bye(reason=ByeReason.NORMAL, message="bye"))

    def pause_reading(self) -> None:
        assert self.transport is not None
        self.transport.pause_reading()

    def resume_reading(self) -> None:
        assert self.transport is not None
        self.transport.resume_reading()

    def hang_up(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    @property
    def joined(self) -> bool:
        return isinstance(self.auth, AuthOk) and self.conn.state is State.OPEN


async def connect(
    port: int,
    context: ssl.SSLContext | None,
    label: str,
    ticket: bytes = b"-",
    *,
    receive_buffer: int | None = None,
    **options: Any,
) -> WireClient:
    """A ``WireClient`` connected over TLS (or plain TCP with ``context=None``)."""
    loop = asyncio.get_running_loop()
    client = WireClient(label, ticket, **options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        # Small and fixed (no autotuning): a paused reader stops the server soon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await loop.sock_connect(sock, (HOST, port))
        await loop.create_connection(
            lambda: client, sock=sock, ssl=context, server_hostname=HOST if context else None
        )
    except BaseException:
        sock.close()
        raise
    return client


async def join(
    port: int, context: ssl.SSLContext, label: str, ticket: bytes, **options: Any
) -> WireClient:
    """Connected and authenticated (AuthOk, or AuthFailed: see ``client.auth``)."""
    client = await connect(port, context, label, ticket, **options)
    await client.wait_for(lambda: client.auth is not None or client.eof, "an Auth answer")
    return client


async def joined(
    port: int, context: ssl.SSLContext, label: str, ticket: bytes, **options: Any
) -> WireClient:
    client = await join(port, context, label, ticket, **options)
    assert client.joined, (client, client.auth, client.closed)
    await client.wait_for(lambda: client.name in client.roster, "itself in the roster")
    return client


async def speaker_and_small_reader(
    main: LiveServer, pki: Pki, issuer: Center
) -> tuple[WireClient, WireClient, WireClient, int]:
    """``main`` holds an event where ana has the floor and a stream, bo listens, and cy
    listens with a 4 KiB receive buffer (soon behind once it stops reading): ana, bo,
    cy and ana's stream id, which cy has seen open."""
    main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
    context = pki.client_ssl()
    ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
    bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))
    cy = await connect(main.port, context, "cy", sealed(issuer, "cy"), receive_buffer=4096)
    await cy.wait_for(lambda: cy.joined and "cy" in cy.roster, "cy joined")
    ana.send(TakeFloor())
    ana.open_stream()
    await ana.wait_for(lambda: ana.my_stream() is not None, "ana's stream")
    stream = ana.my_stream()
    assert stream is not None
    await cy.wait_for(lambda: stream in cy.streams, "the stream at cy")
    return ana, bo, cy, stream
