"""The live port's door for browsers: HTTP/1.1 and a WebSocket carrying the same wire frames.

A browser cannot open a raw TLS connection, so a live server's one TLS port
also speaks HTTP/1.1 (ALPN ``http/1.1``, beside ``townhall/1``): a
``WebSocketDoor`` reads the one request with h11 (at most
``MAX_REQUEST_BYTES`` of head), checks the path (``/live``) and the
``Origin`` against the Center's public origins, and lets wsproto do the
RFC 6455 upgrade and framing. From then on each binary WebSocket message
carries exactly one wire frame, byte for byte what the native port carries,
so the rest of the server (``routing.Opening``, the room's ``Dispatcher``)
never knows which door a participant came through: ``receive`` turns bytes
read into whole wire frames, ``send`` turns the wire bytes the core queued
into one WebSocket message per frame. Anything else (text, a message that is
not exactly one valid frame, one over the largest frame) closes the
WebSocket with its ``CloseCode``; the wire's own farewell (``AuthFailed``,
``Bye``) picks the close code when the core ends the connection.
Sans-IO like the core: bytes in, bytes out, no clock. docs/protocol.md,
"WebSocket", is the contract the browser participant relies on.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

import h11
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError as WebSocketProtocolError

from townhall.wire import Bye, ByeReason, Channel, RemoteProtocolError
from townhall.wire.frames import HEADER_SIZE, MAX_PAYLOAD, parse_header
from townhall.wire.messages import decode_message

__all__ = [
    "MAX_MESSAGE",
    "MAX_REQUEST_BYTES",
    "WEBSOCKET_PATH",
    "CloseCode",
    "Received",
    "WebSocketDoor",
    "origin_of",
]

WEBSOCKET_PATH: Final = "/live"
HEALTH_PATHS: Final = frozenset({"/", "/healthz"})
MAX_REQUEST_BYTES: Final = 8 * 1024  # the request line and headers; a browser's are ~1 KiB
MAX_MESSAGE: Final = HEADER_SIZE + max(MAX_PAYLOAD.values())  # the largest wire frame
HEALTH_BODY: Final = b"townhall live server\n"

_LENGTH: Final = struct.Struct(">I")
_AUTH_FAILED: Final = 5  # CONTROL type bytes of the wire's two farewells
_BYE: Final = 9


class CloseCode(enum.IntEnum):
    """The WebSocket close codes a live server sends (RFC 6455 §7.4; 4xxx are ours)."""

    NORMAL = 1000  # Bye normal, removed, replaced, event-ended: the Bye before it says which
    GOING_AWAY = 1001  # Bye shutdown or idle-timeout: the server stops, or heard nothing
    UNSUPPORTED_DATA = 1003  # a text message: the protocol is binary
    POLICY_VIOLATION = 1008  # not exactly one valid wire frame; a wire protocol error
    MESSAGE_TOO_BIG = 1009  # a message larger than the largest wire frame
    INTERNAL_ERROR = 1011  # the server failed on this connection's input (a bug)
    AUTH_FAILED = 4401  # AuthFailed: the AuthFailed before it says why


_BYE_CODES: Final = {
    ByeReason.SHUTDOWN: CloseCode.GOING_AWAY,
    ByeReason.IDLE_TIMEOUT: CloseCode.GOING_AWAY,
    ByeReason.PROTOCOL_ERROR: CloseCode.POLICY_VIOLATION,
    ByeReason.UNSUPPORTED_VERSION: CloseCode.POLICY_VIOLATION,
    ByeReason.HANDSHAKE_TIMEOUT: CloseCode.POLICY_VIOLATION,
    ByeReason.AUTH_FAILED: CloseCode.AUTH_FAILED,
}


def origin_of(url: str) -> str:
    """The origin of ``url`` as a browser sends it in ``Origin``: ``scheme://host[:port]``,
    lower case, the scheme's default port left out. ValueError if it has no host."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL with a host: {url!r}")
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == (443 if scheme == "https" else 80):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


@dataclass(frozen=True, slots=True)
class Received:
    """What bytes read gave: write ``out`` as it is, hand ``frames`` (whole wire frames) to
    the core; ``upgraded``: the WebSocket opened just now; ``finished``: the door is shut
    (refused, or the peer closed): tell the core EOF if it has the connection, then close."""

    out: bytes = b""
    frames: bytes = b""
    upgraded: bool = False
    finished: bool = False


class _Phase(enum.Enum):
    REQUEST = "request"  # reading the HTTP request
    OPEN = "open"  # the WebSocket is up
    SHUT = "shut"  # answered and closing, or closed


class WebSocketDoor:
    """One HTTP/1.1 connection of the live port: its request, then its WebSocket."""

    def __init__(self, origins: Iterable[str]) -> None:
        """``origins``: the page origins allowed to open the WebSocket (``origin_of`` form)."""
        self._origins = frozenset(origins)
        self._http = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_REQUEST_BYTES)
        self._ws: WSConnection | None = None
        self._phase = _Phase.REQUEST
        self._message = bytearray()
        self._request_bytes = 0
        self._farewell: tuple[int, bytes] | None = None  # the last AuthFailed or Bye sent
        self.refusal = ""  # why the door shut, for the log and tests

    @property
    def upgraded(self) -> bool:
        """The WebSocket was opened (its frames reach the core)."""
        return self._ws is not None

    # -- bytes in ---------------------------------------------------------------------

    def receive(self, data: bytes) -> Received:
        """Bytes read (``b""``: EOF)."""
        if self._phase is _Phase.SHUT:
            return Received(finished=True)
        if not data:
            self._phase = _Phase.SHUT
            self.refusal = self.refusal or "EOF"
            return Received(finished=True)
        if self._phase is _Phase.REQUEST:
            return self._request(data)
        return self._messages(data)

    def _request(self, data: bytes) -> Received:
        http = self._http
        self._request_bytes += len(data)
        if self._request_bytes > MAX_REQUEST_BYTES:
            return self._answer(431, f"a request of more than {MAX_REQUEST_BYTES} bytes")
        try:
            http.receive_data(data)
            event = http.next_event()
        except h11.RemoteProtocolError as error:
            # h11 says 431 for a head over MAX_REQUEST_BYTES, 400 for a malformed one
            return self._answer(error.error_status_hint, f"bad request: {error}")
        if event is h11.NEED_DATA:
            return Received()
        if not isinstance(event, h11.Request):
            return self._answer(400, "not an HTTP request")
        path = event.target.decode("ascii", "replace").partition("?")[0]
        if event.method != b"GET":
            return self._answer(405, "only GET", [(b"allow", b"GET")])
        if path in HEALTH_PATHS:
            return self._answer(200, "health", body=HEALTH_BODY)
        if path != WEBSOCKET_PATH:
            return self._answer(404, f"no such path: {path[:100]!r}")
        headers = {name.lower(): value for name, value in event.headers}
        origin = headers.get(b"origin", b"").decode("ascii", "replace").lower()
        if origin not in self._origins:
            # before the upgrade: a page of another site never gets a WebSocket
            return self._answer(403, f"origin refused: {origin[:100]!r}")
        if headers.get(b"upgrade", b"").lower() != b"websocket":
            return self._answer(426, "not a WebSocket upgrade", [(b"upgrade", b"websocket")])
        try:
            ending = http.next_event()
        except h11.RemoteProtocolError as error:
            return self._answer(400, f"bad request: {error}")
        if not isinstance(ending, h11.EndOfMessage):
            return self._answer(400, "an upgrade request has no body")
        ws = WSConnection(ConnectionType.SERVER)
        try:
            ws.initiate_upgrade_connection(list(event.headers), event.target)
            request = next(iter(ws.events()), None)
        except WebSocketProtocolError as error:
            self._phase = _Phase.SHUT
            self.refusal = f"bad upgrade: {error}"
            hint = error.event_hint
            if isinstance(hint, RejectConnection):
                return Received(out=ws.send(hint), finished=True)
            return self._answer(400, self.refusal)
        if not isinstance(request, Request):
            return self._answer(400, "not a WebSocket upgrade")
        # no subprotocol, no extension: permessage-deflate would only cost CPU on media
        out = ws.send(AcceptConnection())
        self._ws = ws
        self._phase = _Phase.OPEN
        trailing = http.trailing_data[0]  # a client that did not wait for the 101
        if not trailing:
            return Received(out=out, upgraded=True)
        more = self._messages(bytes(trailing))
        return Received(out + more.out, more.frames, True, more.finished)

    def _answer(
        self,
        status: int,
        why: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        body: bytes | None = None,
    ) -> Received:
        """A whole HTTP response, then the connection closes. Plain text, never sniffed
        as anything else: a refusal quotes what the client sent."""
        self._phase = _Phase.SHUT
        if status != 200 or body is None:
            self.refusal = why
            body = f"{status} {why}\n".encode("ascii", "replace")
        response_headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"x-content-type-options", b"nosniff"),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
            (b"cache-control", b"no-store"),
            *(headers or []),
        ]
        # a fresh h11 connection: the reading one may be in ERROR after a bad request
        writer = h11.Connection(h11.SERVER)
        writer.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        writer.next_event()
        out = writer.send(h11.Response(status_code=status, headers=response_headers)) or b""
        out += writer.send(h11.Data(data=body)) or b""
        return Received(out=out, finished=True)

    def _messages(self, data: bytes) -> Received:
        ws = self._ws
        assert ws is not None
        ws.receive_data(data)
        out = bytearray()
        frames = bytearray()
        message = self._message
        for event in ws.events():
            if isinstance(event, BytesMessage):
                message += event.data
                if len(message) > MAX_MESSAGE:
                    return self._shut(out, frames, CloseCode.MESSAGE_TOO_BIG, "message too big")
                if not event.message_finished:
                    continue
                problem = _not_one_frame(message)
                if problem:
                    return self._shut(out, frames, CloseCode.POLICY_VIOLATION, problem)
                frames += message
                message.clear()
            elif isinstance(event, TextMessage):
                return self._shut(out, frames, CloseCode.UNSUPPORTED_DATA, "text message")
            elif isinstance(event, Ping):
                out += ws.send(event.response())
            elif isinstance(event, CloseConnection):
                if ws.state is ConnectionState.REMOTE_CLOSING:  # the peer closed
                    out += ws.send(event.response())
                    self._phase = _Phase.SHUT
                    self.refusal = f"closed by the peer ({event.code})"
                    return Received(bytes(out), bytes(frames), finished=True)
                # wsproto found bad WebSocket framing and says which code (1002, 1007...)
                return self._shut(out, frames, int(event.code), event.reason or "bad framing")
        return Received(bytes(out), bytes(frames))

    def _shut(self, out: bytearray, frames: bytearray, code: int, why: str) -> Received:
        """Refuse the peer's input: the frames before it still count, then the close."""
        self.refusal = why
        out += self._close_frame(code, why)
        self._phase = _Phase.SHUT
        self._message.clear()
        return Received(bytes(out), bytes(frames), finished=True)

    # -- bytes out --------------------------------------------------------------------

    def send(self, wire: bytes) -> bytes:
        """The core's queued wire bytes (whole frames) as one binary message per frame."""
        ws = self._ws
        if ws is None or ws.state is not ConnectionState.OPEN or not wire:
            return b""
        out = bytearray()
        position, end = 0, len(wire)
        while position < end:
            frame_end = position + HEADER_SIZE + _LENGTH.unpack_from(wire, position + 4)[0]
            frame = wire[position:frame_end]
            if wire[position + 1] == Channel.CONTROL and wire[position + 2] in (
                _AUTH_FAILED,
                _BYE,
            ):
                self._farewell = (wire[position + 2], frame[HEADER_SIZE:])
            out += ws.send(_binary(frame))
            position = frame_end
        return bytes(out)

    def close(self, code: int | None = None) -> bytes:
        """The close frame to write before closing the transport (b"" if none is due).

        Without ``code``, the wire's last farewell decides (``AuthFailed``: 4401,
        ``Bye``: by its reason), else 1000.
        """
        if self._ws is None or self._ws.state is not ConnectionState.OPEN:
            self._phase = _Phase.SHUT
            return b""
        if code is None:
            code = self._farewell_code()
        self._phase = _Phase.SHUT
        return self._close_frame(code, CloseCode(code).name.lower().replace("_", "-"))

    def _farewell_code(self) -> int:
        if self._farewell is None:
            return CloseCode.NORMAL
        type_, payload = self._farewell
        if type_ == _AUTH_FAILED:
            return CloseCode.AUTH_FAILED
        try:
            bye = decode_message(Bye, payload)
        except RemoteProtocolError:
            return CloseCode.NORMAL
        assert isinstance(bye, Bye)
        return _BYE_CODES.get(bye.reason, CloseCode.NORMAL)

    def _close_frame(self, code: int, reason: str) -> bytes:
        ws = self._ws
        if ws is None or ws.state not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return b""
        return ws.send(CloseConnection(code=code, reason=reason[:120]))


def _binary(frame: bytes) -> BytesMessage:
    return BytesMessage(data=frame)


def _not_one_frame(message: bytearray) -> str:
    """Why ``message`` is not exactly one valid wire frame ("" if it is)."""
    if len(message) < HEADER_SIZE:
        return f"a {len(message)}-byte message: not a wire frame"
    try:
        header = parse_header(message)
    except RemoteProtocolError as error:
        return f"not a wire frame: {error}"
    if HEADER_SIZE + header.length != len(message):
        return f"a {len(message)}-byte message holds a frame of {HEADER_SIZE + header.length}"
    return ""
