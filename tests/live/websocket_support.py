"""A browser's side of the live port for tests: wsproto over real TLS, speaking the wire inside.

``WebSocketClient`` is ``server_support.WireClient`` (the same wire
``Connection``, the same record of what it saw) with the WebSocket in
between, as a browser page has it: TLS with ALPN ``h2, http/1.1`` (what
Chromium offers), the HTTP upgrade with an ``Origin``, then one binary
message per wire frame each way. It also records what a refused one sees:
the HTTP status, or the close code.
"""

from __future__ import annotations

import asyncio
import struct
from typing import Any

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Message,
    RejectConnection,
    Request,
    TextMessage,
)

from tests.live.server_support import HOST, Pki, WireClient
from townhall.wire import Hello

CENTER_ORIGIN = "https://center.test"


class WebSocketClient(WireClient):
    def __init__(
        self,
        label: str,
        ticket: bytes,
        *,
        origin: str | None = CENTER_ORIGIN,
        path: str = "/live",
        extra_headers: list[tuple[bytes, bytes]] | None = None,
        **options: Any,
    ) -> None:
        super().__init__(label, ticket, **options)
        self.ws = WSConnection(ConnectionType.CLIENT)
        self.origin = origin
        self.path = path
        self.extra_headers = extra_headers or []
        self.accepted = False
        self.status: int | None = None  # the HTTP status of a refused upgrade
        self.close_code: int | None = None  # the server's close frame
        self.close_reason = ""
        self.messages_in = 0  # binary WebSocket messages received
        self._message = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        headers = list(self.extra_headers)
        if self.origin is not None:
            headers.append((b"origin", self.origin.encode()))
        transport.write(self.ws.send(Request(host=HOST, target=self.path, extra_headers=headers)))

    def data_received(self, data: bytes) -> None:
        self.raw += data
        self.ws.receive_data(data)
        for event in self.ws.events():
            if isinstance(event, AcceptConnection):
                self.accepted = True
                if self.say_hello:
                    self.send(Hello(role=self.role, version=1, client="tests-websocket/1"))
            elif isinstance(event, RejectConnection):
                self.status = event.status_code
            elif isinstance(event, BytesMessage):
                self._message += event.data
                if event.message_finished:
                    self.messages_in += 1
                    frame, self._message = bytes(self._message), bytearray()
                    self._receive(frame)
            elif isinstance(event, CloseConnection):
                self.close_code, self.close_reason = event.code, event.reason or ""
                if self.ws.state is ConnectionState.REMOTE_CLOSING:
                    self.transport_write(self.ws.send(event.response()))
        self._changed.set()

    def transport_write(self, data: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(data)

    def write_wire(self, data: bytes) -> None:
        """One binary message per wire frame, as the browser participant sends them."""
        position = 0
        while position < len(data):
            end = position + 8 + struct.unpack_from(">I", data, position + 4)[0]
            self.send_message(data[position:end])
            position = end

    def send_message(self, data: bytes | str) -> None:
        """Any one WebSocket message (text for a ``str``): the bad inputs' way in."""
        message: Message[Any] = (
            TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
        )
        self.transport_write(self.ws.send(message))

    async def refused(self) -> None:
        """Wait until the server refused the upgrade or closed the WebSocket."""
        await self.wait_for(
            lambda: self.status is not None or self.close_code is not None or self.eof,
            "a refusal",
        )


async def connect_ws(
    port: int, pki: Pki, label: str, ticket: bytes = b"-", **options: Any
) -> WebSocketClient:
    """A ``WebSocketClient`` over TLS; Chromium's ALPN offer (``h2``, ``http/1.1``)."""
    loop = asyncio.get_running_loop()
    client = WebSocketClient(label, ticket, **options)
    await loop.create_connection(
        lambda: client, HOST, port, ssl=pki.client_ssl(["h2", "http/1.1"]), server_hostname=HOST
    )
    return client


async def join_ws(
    port: int, pki: Pki, label: str, ticket: bytes, **options: Any
) -> WebSocketClient:
    client = await connect_ws(port, pki, label, ticket, **options)
    await client.wait_for(lambda: client.auth is not None or client.eof, "an Auth answer")
    assert client.joined, (client, client.auth, client.status, client.close_code)
    await client.wait_for(lambda: client.name in client.roster, "itself in the roster")
    return client
