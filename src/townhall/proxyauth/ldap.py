"""A small LDAPv3 client: simple bind and equality searches, enough to check a password.

The reverse-proxy sign-in service (``townhall proxy-auth``) finds a user's
entry by one attribute, reads a few attributes and the groups naming it, and
binds as that entry with the password typed in. That needs four operations
of RFC 4511 (bind, search, StartTLS, unbind), encoded here in BER by hand so
that Townhall needs no LDAP library. Filters are built from values, never
parsed from text, so user input cannot change their shape. The codec
(``encode_*``/``decode_message``) is pure; ``LdapConnection`` is the blocking
socket around it, with a time limit on every read.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

MAX_MESSAGE_BYTES = 1 << 20
RESULT_SUCCESS = 0
RESULT_INVALID_CREDENTIALS = 49
RESULT_NO_SUCH_OBJECT = 32
STARTTLS_OID = "1.3.6.1.4.1.1466.20037"

# BER tags used by LDAP (RFC 4511 section 4 and appendix B).
_INTEGER, _OCTETS, _BOOLEAN, _ENUM = 0x02, 0x04, 0x01, 0x0A
_SEQUENCE, _SET = 0x30, 0x31
_BIND_REQUEST, _BIND_RESPONSE = 0x60, 0x61
_UNBIND_REQUEST = 0x42
_SEARCH_REQUEST, _SEARCH_ENTRY, _SEARCH_DONE, _SEARCH_REFERENCE = 0x63, 0x64, 0x65, 0x73
_EXTENDED_REQUEST, _EXTENDED_RESPONSE = 0x77, 0x78
_SIMPLE_AUTH = 0x80
_FILTER_AND, _FILTER_EQUALITY = 0xA0, 0xA3
_EXTENDED_NAME = 0x80

SCOPE_BASE, SCOPE_ONE, SCOPE_SUB = 0, 1, 2


class LdapError(Exception):
    """The directory could not be asked (connection, protocol or a failed operation)."""


# --- BER encoding ---------------------------------------------------------------------------


def _length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    body = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _length(len(content)) + content


def _integer(value: int, tag: int = _INTEGER) -> bytes:
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def _octets(value: str | bytes, tag: int = _OCTETS) -> bytes:
    return tlv(tag, value.encode("utf-8") if isinstance(value, str) else value)


def _message(message_id: int, operation: bytes) -> bytes:
    return tlv(_SEQUENCE, _integer(message_id) + operation)


def encode_bind(message_id: int, dn: str, password: str) -> bytes:
    """BindRequest, version 3, simple authentication."""
    body = _integer(3) + _octets(dn) + _octets(password, _SIMPLE_AUTH)
    return _message(message_id, tlv(_BIND_REQUEST, body))


def encode_unbind(message_id: int) -> bytes:
    return _message(message_id, bytes([_UNBIND_REQUEST, 0]))


def encode_starttls(message_id: int) -> bytes:
    return _message(message_id, tlv(_EXTENDED_REQUEST, _octets(STARTTLS_OID, _EXTENDED_NAME)))


def equality_filter(pairs: Sequence[tuple[str, str]]) -> bytes:
    """(&(a=v)(b=w)...) as BER: values are data, so no RFC 4515 escaping is needed."""
    items = [
        tlv(_FILTER_EQUALITY, _octets(attribute) + _octets(value)) for attribute, value in pairs
    ]
    if len(items) == 1:
        return items[0]
    return tlv(_FILTER_AND, b"".join(items))


def encode_search(
    message_id: int,
    base: str,
    filter_ber: bytes,
    attributes: Sequence[str],
    *,
    scope: int = SCOPE_SUB,
    size_limit: int = 0,
    time_limit: int = 10,
) -> bytes:
    body = (
        _octets(base)
        + _integer(scope, _ENUM)
        + _integer(0, _ENUM)  # derefAliases: never
        + _integer(size_limit)
        + _integer(time_limit)
        + tlv(_BOOLEAN, b"\x00")  # typesOnly: false
        + filter_ber
        + tlv(_SEQUENCE, b"".join(_octets(a) for a in attributes))
    )
    return _message(message_id, tlv(_SEARCH_REQUEST, body))


# --- BER decoding ---------------------------------------------------------------------------


def _read_tlv(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, content, next offset) of the element at ``offset``; LdapError if malformed."""
    if offset + 2 > len(data):
        raise LdapError("truncated BER element")
    tag = data[offset]
    first = data[offset + 1]
    offset += 2
    if first < 0x80:
        size = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise LdapError("unsupported BER length")
        size = int.from_bytes(data[offset : offset + count], "big")
        offset += count
    end = offset + size
    if end > len(data):
        raise LdapError("truncated BER element")
    return tag, data[offset:end], end


def _children(content: bytes) -> Iterator[tuple[int, bytes]]:
    offset = 0
    while offset < len(content):
        tag, value, offset = _read_tlv(content, offset)
        yield tag, value


def message_size(buffer: bytes) -> int | None:
    """The size of the first whole message in ``buffer``, or None if more bytes are needed."""
    if len(buffer) < 2:
        return None
    if buffer[0] != _SEQUENCE:
        raise LdapError("not an LDAP message")
    first = buffer[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if count == 0 or count > 4:
        raise LdapError("unsupported BER length")
    if len(buffer) < 2 + count:
        return None
    size = 2 + count + int.from_bytes(buffer[2 : 2 + count], "big")
    if size > MAX_MESSAGE_BYTES:
        raise LdapError("LDAP message too large")
    return size


@dataclass(frozen=True, slots=True)
class Result:
    code: int
    matched_dn: str
    message: str


@dataclass(frozen=True, slots=True)
class Entry:
    dn: str
    attributes: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def first(self, name: str) -> str | None:
        for key, values in self.attributes.items():
            if key.lower() == name.lower() and values:
                return values[0]
        return None

    def all(self, name: str) -> tuple[str, ...]:
        for key, values in self.attributes.items():
            if key.lower() == name.lower():
                return values
        return ()


@dataclass(frozen=True, slots=True)
class Message:
    message_id: int
    tag: int
    result: Result | None = None
    entry: Entry | None = None


def _text(value: bytes) -> str:
    return value.decode("utf-8", errors="replace")


def _result(content: bytes) -> Result:
    parts = list(_children(content))
    if len(parts) < 3 or parts[0][0] != _ENUM:
        raise LdapError("malformed LDAPResult")
    return Result(int.from_bytes(parts[0][1], "big"), _text(parts[1][1]), _text(parts[2][1]))


def decode_message(data: bytes) -> Message:
    tag, content, end = _read_tlv(data, 0)
    if tag != _SEQUENCE or end != len(data):
        raise LdapError("malformed LDAP message")
    parts = list(_children(content))
    if len(parts) < 2 or parts[0][0] != _INTEGER:
        raise LdapError("malformed LDAP message")
    message_id = int.from_bytes(parts[0][1], "big", signed=True)
    op_tag, op = parts[1]
    if op_tag in (_BIND_RESPONSE, _SEARCH_DONE, _EXTENDED_RESPONSE):
        return Message(message_id, op_tag, result=_result(op))
    if op_tag == _SEARCH_ENTRY:
        fields = list(_children(op))
        if len(fields) != 2:
            raise LdapError("malformed SearchResultEntry")
        attributes: dict[str, tuple[str, ...]] = {}
        for _, attribute in _children(fields[1][1]):
            pieces = list(_children(attribute))
            if len(pieces) != 2:
                raise LdapError("malformed attribute")
            values = tuple(_text(value) for _, value in _children(pieces[1][1]))
            attributes[_text(pieces[0][1])] = values
        return Message(message_id, op_tag, entry=Entry(_text(fields[0][1]), attributes))
    return Message(message_id, op_tag)


# --- the connection -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LdapServer:
    """Where the directory is: ``ldap://host[:port]`` or ``ldaps://host[:port]``."""

    url: str
    starttls: bool = False
    ca_file: str = ""
    timeout: float = 10.0

    def address(self) -> tuple[str, int, bool]:
        parts = urlsplit(self.url)
        if parts.scheme not in ("ldap", "ldaps") or not parts.hostname:
            raise ValueError(f"not an ldap:// or ldaps:// URL: {self.url!r}")
        secure = parts.scheme == "ldaps"
        return parts.hostname, parts.port or (636 if secure else 389), secure

    def tls_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=self.ca_file or None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        return context


class LdapConnection:
    """One connection to the directory; use as a context manager."""

    def __init__(self, server: LdapServer) -> None:
        host, port, secure = server.address()
        self._server = server
        self._host = host
        self._next_id = 1
        self._buffer = b""
        try:
            raw = socket.create_connection((host, port), timeout=server.timeout)
        except OSError as error:
            raise LdapError(f"cannot reach the directory at {host}:{port}: {error}") from error
        self._sock: socket.socket = raw
        try:
            if secure:
                self._sock = server.tls_context().wrap_socket(raw, server_hostname=host)
            elif server.starttls:
                self._starttls()
        except (OSError, LdapError) as error:
            raw.close()
            raise LdapError(f"TLS with the directory failed: {error}") from error

    def __enter__(self) -> LdapConnection:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._sock.sendall(encode_unbind(self._take_id()))
        except OSError:
            pass
        self._sock.close()

    def _take_id(self) -> int:
        message_id = self._next_id
        self._next_id += 1
        return message_id

    def _send(self, data: bytes) -> None:
        try:
            self._sock.sendall(data)
        except OSError as error:
            raise LdapError(f"the directory connection failed: {error}") from error

    def _receive(self) -> Message:
        while True:
            size = message_size(self._buffer)
            if size is not None and len(self._buffer) >= size:
                data, self._buffer = self._buffer[:size], self._buffer[size:]
                return decode_message(data)
            try:
                chunk = self._sock.recv(65536)
            except OSError as error:
                raise LdapError(f"the directory did not answer: {error}") from error
            if not chunk:
                raise LdapError("the directory closed the connection")
            self._buffer += chunk

    def _result_of(self, message_id: int, tag: int) -> Result:
        while True:
            message = self._receive()
            if message.message_id == 0:
                raise LdapError("the directory ended the session (notice of disconnection)")
            if message.message_id == message_id and message.tag == tag:
                assert message.result is not None
                return message.result

    def _starttls(self) -> None:
        message_id = self._take_id()
        self._send(encode_starttls(message_id))
        result = self._result_of(message_id, _EXTENDED_RESPONSE)
        if result.code != RESULT_SUCCESS:
            raise LdapError(f"StartTLS refused: {result.message or result.code}")
        context = self._server.tls_context()
        self._sock = context.wrap_socket(self._sock, server_hostname=self._host)

    def bind(self, dn: str, password: str) -> bool:
        """True for a good password, False for invalid credentials; LdapError otherwise.

        An empty password would be an "unauthenticated bind", which many
        directories accept for any DN: it is refused here before asking.
        """
        if not password:
            return False
        message_id = self._take_id()
        self._send(encode_bind(message_id, dn, password))
        result = self._result_of(message_id, _BIND_RESPONSE)
        if result.code == RESULT_SUCCESS:
            return True
        if result.code == RESULT_INVALID_CREDENTIALS:
            return False
        raise LdapError(f"bind failed with result {result.code}: {result.message}")

    def search(
        self,
        base: str,
        pairs: Sequence[tuple[str, str]],
        attributes: Sequence[str],
        *,
        size_limit: int = 0,
    ) -> list[Entry]:
        message_id = self._take_id()
        self._send(
            encode_search(
                message_id, base, equality_filter(pairs), attributes, size_limit=size_limit
            )
        )
        entries: list[Entry] = []
        while True:
            message = self._receive()
            if message.message_id != message_id:
                continue
            if message.tag == _SEARCH_ENTRY and message.entry is not None:
                entries.append(message.entry)
            elif message.tag == _SEARCH_DONE:
                assert message.result is not None
                code = message.result.code
                if code in (RESULT_SUCCESS, RESULT_NO_SUCH_OBJECT):
                    return entries
                if code == 4 and entries:  # sizeLimitExceeded: what came is enough to decide
                    return entries
                raise LdapError(f"search failed with result {code}: {message.result.message}")
