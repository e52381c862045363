"""One client connection to a live server: TLS checked against the ticket, wire over it.

The asyncio shell (a ``Protocol``, not streams) around a client-side
``townhall.wire.Connection``: it opens TLS with ALPN ``townhall/1`` and checks
the server the way docs/tickets.md says (the ticket's SPKI pins; else its CA
and the entry's host name, without the user's trust store; else the system
trust store), feeds what it reads to the core, writes what the core returns,
arms the core's keepalive timer, answers every Ping, and turns the handshake
answers (Welcome, Pong, AuthOk, AuthFailed) into awaitables. Everything else
the server sends after AuthOk goes to the handler ``attach`` installs, in
order, with ``ConnectionClosed`` last. It knows no rooms, rosters or audio:
``townhall.client.selection`` and ``townhall.client.session`` use it.
"""

from __future__ import annotations

import asyncio
import itertools
import ssl
from collections.abc import Callable
from typing import Final, TypeVar, cast

from townhall.ticket import ServerEntry, spki_sha256
from townhall.wire import (
    ALPN,
    NEED_DATA,
    PROTOCOL_VERSION,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Bye,
    ByeReason,
    Connection,
    ConnectionClosed,
    EncodedMessage,
    Event,
    Hello,
    LocalProtocolError,
    MediaFrame,
    Message,
    Ping,
    Pong,
    RemoteProtocolError,
    Role,
    Settings,
    Side,
    State,
    Welcome,
)

__all__ = [
    "ALPN",
    "AuthRefused",
    "Link",
    "LinkClosed",
    "ServerCheckFailed",
    "open_link",
    "tls_context",
]

CLIENT_NAME: Final = "townhall-python/0.1"

_T = TypeVar("_T")


class ServerCheckFailed(Exception):
    """The server is not the one the ticket names (pin, ALPN); nothing was sent to it."""


class LinkClosed(Exception):
    """The connection ended while we waited for an answer; ``closed`` says how."""

    def __init__(self, closed: ConnectionClosed) -> None:
        super().__init__(
            f"{closed.reason.value}: {closed.message}" if closed.message else closed.reason.value
        )
        self.closed = closed


class AuthRefused(Exception):
    """The server answered Auth with AuthFailed."""

    def __init__(self, reason: AuthFailure, message: str) -> None:
        super().__init__(f"{reason.value}: {message}" if message else reason.value)
        self.reason = reason
        self.message = message


def tls_context(entry: ServerEntry, ca_pem: str | None) -> ssl.SSLContext:
    """How to check ``entry``'s certificate, as docs/tickets.md says.

    With pins the certificate is checked after the handshake against them
    (``Link.connection_made``), so the chain is not verified here; with the
    ticket's CA only that CA is trusted, never the user's store, and the name
    must match ``entry.host``; with neither, the system trust store.
    """
    if entry.spki_sha256:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_pem:
        context = ssl.create_default_context(cadata=ca_pem)
    else:
        context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols([ALPN])
    return context


class Link(asyncio.Protocol):
    """The client end of one connection; make it with :func:`open_link`."""

    def __init__(self, entry: ServerEntry, *, settings: Settings | None = None) -> None:
        self.entry = entry
        self._loop = asyncio.get_running_loop()
        self._conn = Connection(Side.CLIENT, now=self._loop.time(), settings=settings)
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._eof = False
        self._paused = False
        self._nonces = itertools.count(1 << 40)  # apart from the core's keepalive nonces
        self._welcome: asyncio.Future[Welcome] | None = None
        self._auth: asyncio.Future[AuthOk] | None = None
        self._pongs: dict[int, asyncio.Future[Pong]] = {}
        self._handler: Callable[[Event], None] | None = None
        self._pending: list[Event] = []
        self._lost: asyncio.Future[None] = self._loop.create_future()
        self.closed: asyncio.Future[ConnectionClosed] = self._loop.create_future()
        self.failure: str | None = None
        self.server_name: str | None = None

    # -- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        tls = transport.get_extra_info("ssl_object")
        if not isinstance(tls, ssl.SSLObject):
            self._refuse("not a TLS connection")
            return
        if tls.selected_alpn_protocol() != ALPN:
            self._refuse(f"the server did not agree to ALPN {ALPN}")
            return
        if self.entry.spki_sha256:
            der = tls.getpeercert(binary_form=True)
            if der is None or spki_sha256(der) not in self.entry.spki_sha256:
                self._refuse("the server's certificate matches none of the ticket's pins")
                return
        self._arm()

    def data_received(self, data: bytes) -> None:
        try:
            self._conn.receive_data(data, self._loop.time())
        except LocalProtocolError:  # only after EOF; the core drops bytes once closed
            return
        self._drain()
        self._arm()

    def eof_received(self) -> bool | None:
        self._feed_eof()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.closed.done():
            self._feed_eof()
        if not self.closed.done():  # a refused server (pins, ALPN): no wire conversation
            text = self.failure or (str(exc) if exc else "the connection was closed")
            self._finish(ConnectionClosed(ByeReason.CONNECTION_LOST, text[:1024], by_peer=True))
        if not self._lost.done():
            self._lost.set_result(None)

    def pause_writing(self) -> None:
        self._paused = True

    def resume_writing(self) -> None:
        self._paused = False

    # -- the caller's side ----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._conn.state

    @property
    def is_open(self) -> bool:
        return self._conn.state is State.OPEN and not self.closed.done()

    async def hello(self, client: str = CLIENT_NAME) -> Welcome:
        """Say Hello as a participant; the server's Welcome."""
        self._welcome = self._loop.create_future()
        self.send(Hello(role=Role.PARTICIPANT, version=PROTOCOL_VERSION, client=client))
        return await self._answer(self._welcome)

    async def ping(self) -> tuple[float, Pong]:
        """Round-trip time in seconds, measured on the loop's clock, and the Pong."""
        nonce = next(self._nonces)
        future: asyncio.Future[Pong] = self._loop.create_future()
        self._pongs[nonce] = future
        started = self._loop.time()
        self.send(Ping(nonce=nonce))
        pong = await self._answer(future)
        return self._loop.time() - started, pong

    async def authenticate(self, ticket: bytes) -> AuthOk:
        """Present the sealed credential; AuthOk, or AuthRefused / LinkClosed."""
        self._auth = self._loop.create_future()
        self.send(Auth(ticket=ticket))
        return await self._answer(self._auth)

    def attach(self, handler: Callable[[Event], None]) -> None:
        """From now on every event the handshake does not consume goes to ``handler``."""
        self._handler = handler
        pending, self._pending = self._pending, []
        for event in pending:
            handler(event)

    def send(self, item: Message | EncodedMessage | MediaFrame) -> bool:
        """Write ``item``; False if it was media dropped because the socket is full.

        Raises LinkClosed once the connection has ended, and LocalProtocolError
        for what the protocol does not allow now (our own misuse).
        """
        if self.closed.done():
            raise LinkClosed(self.closed.result())
        if self._paused and isinstance(item, MediaFrame):
            return False  # media may be lost (docs/protocol.md, "Channels"); control never
        self._write(self._conn.send(item))
        self._arm()
        return True

    def close(self, message: str = "") -> None:
        """Say Bye normal (when the protocol still allows it) and close the transport."""
        if self._conn.state not in (State.CLOSED, State.ERROR) and self._transport is not None:
            try:
                self._write(self._conn.send(Bye(reason=ByeReason.NORMAL, message=message)))
            except LocalProtocolError:
                pass
            self._drain()
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    async def wait_lost(self) -> None:
        """Until the transport is closed."""
        await asyncio.shield(self._lost)

    # -- inside ---------------------------------------------------------------------------

    async def _answer(self, future: asyncio.Future[_T]) -> _T:
        if self.closed.done() and not future.done():
            future.cancel()
            raise LinkClosed(self.closed.result())
        return await future

    def _refuse(self, why: str) -> None:
        self.failure = why
        if self._transport is not None:
            self._transport.abort()

    def _write(self, data: bytes) -> None:
        if data and self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def _feed_eof(self) -> None:
        if self._eof:
            return
        self._eof = True
        try:
            self._conn.receive_data(b"", self._loop.time())
        except LocalProtocolError:
            return
        self._drain()

    def _drain(self) -> None:
        while not self.closed.done():
            try:
                event = self._conn.next_event()
            except RemoteProtocolError as exc:
                self._write(self._conn.send(Bye.for_error(exc)))
                continue  # the core is CLOSED now: the next event is ConnectionClosed
            if event is NEED_DATA:
                return
            if isinstance(event, ConnectionClosed):
                self._finish(event)
                if self._transport is not None:
                    self._transport.close()
                return
            self._dispatch(event)

    def _dispatch(self, event: Message | MediaFrame) -> None:
        match event:
            case Ping():
                self._write(self._conn.send(event.pong()))
            case Welcome():
                self.server_name = event.server
                if self._welcome is not None and not self._welcome.done():
                    self._welcome.set_result(event)
            case Pong(nonce=nonce) if nonce in self._pongs:
                future = self._pongs.pop(nonce)
                if not future.done():
                    future.set_result(event)
            case Pong():
                pass  # the answer to the core's keepalive Ping
            case AuthOk() if self._auth is not None and not self._auth.done():
                self._auth.set_result(event)
            case AuthFailed(reason=reason, message=message):
                if self._auth is not None and not self._auth.done():
                    self._auth.set_exception(AuthRefused(reason, message))
            case _:
                self._deliver(event)

    def _deliver(self, event: Event) -> None:
        if self._handler is not None:
            self._handler(event)
        else:
            self._pending.append(event)

    def _finish(self, closed: ConnectionClosed) -> None:
        if self.closed.done():
            return
        self.closed.set_result(closed)
        waiting: list[asyncio.Future[Pong] | asyncio.Future[Welcome] | asyncio.Future[AuthOk]]
        waiting = [*self._pongs.values()]
        if self._welcome is not None:
            waiting.append(self._welcome)
        if self._auth is not None:
            waiting.append(self._auth)
        self._pongs.clear()
        for future in waiting:
            if not future.done():
                future.set_exception(LinkClosed(closed))
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._deliver(closed)

    def _arm(self) -> None:
        when = self._conn.get_timer()
        if when == self._timer_at and self._timer is not None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = when
        if when is not None and not self.closed.done():
            self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        data = self._conn.handle_timer(self._loop.time())
        self._write(data)
        if self._conn.state is State.CLOSED:
            self._drain()  # our own Bye (timeout): ConnectionClosed, then close
        else:
            self._arm()


async def open_link(
    entry: ServerEntry,
    ca_pem: str | None,
    *,
    connect_timeout: float,
    settings: Settings | None = None,
) -> Link:
    """Connect to ``entry`` over TLS and check it; raises OSError, ssl.SSLError,
    ServerCheckFailed or TimeoutError. Nothing is sent yet."""
    loop = asyncio.get_running_loop()
    context = tls_context(entry, ca_pem)
    async with asyncio.timeout(connect_timeout):
        _, link = await loop.create_connection(
            lambda: Link(entry, settings=settings),
            entry.host,
            entry.port,
            ssl=context,
            server_hostname=entry.host,
            ssl_handshake_timeout=connect_timeout,
        )
    if link.failure is not None:
        raise ServerCheckFailed(link.failure)
    return link
