"""Join tickets: the file the Center hands a registered user to enter a live event.

Three readers use this module. The Center issues a ticket
(:func:`issue_ticket`); the participant application opens it
(:func:`open_ticket`) to learn the event's servers, their certificate pins and
the reverse proxy's cookies; a live server checks the sealed credential that
the participant presents (:func:`verify_sealed_credential`).

Pure code: bytes in, values out. No sockets, no database, no clock (time comes
in as ``now``, Unix seconds); the only file access is the two key-file helpers
at the end. It must not know how a ticket travels (HTTP download, ``townhall:``
link), which credentials a live server holds or has revoked (the server checks
the returned :class:`Credential` against the list the Controller gave it), or
that a credential may serve one live connection at a time (the server enforces
that). ``docs/tickets.md`` explains the format and what each layer protects
against.

Decoding failures raise :class:`TicketError` with a stable ``code`` (the peer's
fault); :func:`issue_ticket` raises :class:`ValueError` for what no ticket may
hold (our own misuse).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import os
import re
import secrets
import struct
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NoReturn, TypeVar
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from townhall.wire import names
from townhall.wire.names import Zone

MEDIA_TYPE = "application/vnd.townhall.ticket"
FILE_EXTENSION = ".townhall"

TICKET_MAGIC = b"THT1"
SEALED_MAGIC = b"THS1"

MAX_TICKET_BYTES = 64 * 1024
MAX_SEALED_BYTES = 2048
MAX_SERVERS = 32
MAX_PINS = 4
MAX_COOKIES = 16
MAX_COOKIE_NAME = names.COOKIE_NAME_MAX
MAX_COOKIE_VALUE = names.COOKIE_VALUE_MAX
MAX_CA_PEM = 32 * 1024
DEFAULT_LIFETIME = 10 * 60
MAX_LIFETIME = 24 * 60 * 60
DEFAULT_LEEWAY = 60
"""Seconds of clock difference tolerated between the Center, servers and clients."""

EVENT_KEY_BYTES = 32

ErrorCode = Literal[
    "malformed",
    "bad_signature",
    "wrong_event",
    "expired",
    "not_yet_valid",
    "bad_credential",
    "unsupported_version",
]


class TicketError(Exception):
    """A ticket or sealed credential was refused; ``code`` is stable, ``message`` is for people.

    Messages never quote secret values: they are safe to log and to show.
    """

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code: ErrorCode = code
        self.message = message


class Role(StrEnum):
    PARTICIPANT = "participant"
    PRESENTER = "presenter"
    MODERATOR = "moderator"


@dataclass(frozen=True, slots=True)
class ServerEntry:
    """One live server of the event's tree, as the participant application sees it.

    ``spki_sha256`` holds base64 SHA-256 digests of the SubjectPublicKeyInfo
    the server may present (:func:`spki_sha256`); empty means "verify against
    the ticket's CA, or the system trust store when the ticket has none".
    """

    name: str
    host: str
    port: int
    zone: Zone
    spki_sha256: tuple[str, ...] = ()

    @property
    def address(self) -> str:
        """``host:port``, with an IPv6 literal in brackets (RFC 3986 §3.2.2)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True, slots=True, repr=False)
class Credential:
    """The user's temporary credential for one event: sealed inside the ticket.

    The live server compares ``credential_id`` and :attr:`secret_sha256` with
    the credentials list from the Controller, which holds digests only.
    """

    credential_id: str
    secret: str
    username: str
    display_name: str
    role: Role

    @classmethod
    def new(cls, *, username: str, display_name: str, role: Role) -> Credential:
        """A fresh credential with a random id and secret (the Center records both)."""
        return cls(
            credential_id=secrets.token_urlsafe(12),
            secret=secrets.token_urlsafe(32),
            username=username,
            display_name=display_name,
            role=role,
        )

    @property
    def secret_sha256(self) -> str:
        return hashlib.sha256(self.secret.encode()).hexdigest()

    def __repr__(self) -> str:
        return (
            f"Credential(credential_id={self.credential_id!r}, secret=<redacted>, "
            f"username={self.username!r}, display_name={self.display_name!r}, "
            f"role={self.role.value!r})"
        )


@dataclass(frozen=True, slots=True, repr=False)
class TicketContents:
    """The part of a ticket its holder can read.

    ``cookies`` are the reverse proxy's session cookies (bearer secrets) for
    the application's own HTTP calls to ``center_url``; ``sealed_credential``
    is what the application presents to a live server, opaque to it. Both are
    left out of ``repr``. ``username``, ``display_name`` and ``role`` are shown
    to the user only: the live server takes them from the sealed credential.
    ``center_key`` is the raw Ed25519 key the ticket was signed with (pin it on
    first use; by itself it proves nothing).
    """

    event_id: int
    title: str
    center_url: str
    issued_at: int
    not_after: int
    username: str
    display_name: str
    role: Role
    servers: tuple[ServerEntry, ...]
    ca_pem: str | None
    cookies: Mapping[str, str]
    sealed_credential: bytes
    center_key: bytes

    def __post_init__(self) -> None:
        object.__setattr__(self, "cookies", MappingProxyType(dict(self.cookies)))

    def __repr__(self) -> str:
        cookies = {name: "<redacted>" for name in self.cookies}
        return (
            f"TicketContents(event_id={self.event_id}, title={self.title!r}, "
            f"center_url={self.center_url!r}, issued_at={self.issued_at}, "
            f"not_after={self.not_after}, username={self.username!r}, "
            f"display_name={self.display_name!r}, role={self.role.value!r}, "
            f"servers={[s.address for s in self.servers]!r}, "
            f"ca_pem={'<present>' if self.ca_pem else None}, cookies={cookies!r}, "
            f"sealed_credential=<{len(self.sealed_credential)} bytes>)"
        )


# --- event keys ------------------------------------------------------------


def generate_event_key() -> bytes:
    """A random AES-256 key for one event: the Center keeps it, the Controller gives it
    to the event's live servers."""
    return os.urandom(EVENT_KEY_BYTES)


def _key_id(key: bytes) -> bytes:
    return hashlib.sha256(b"townhall event key id\x00" + key).digest()[:8]


def event_key_id(key: bytes) -> str:
    """The short public name of an event key, as written in sealed credentials (hex).

    Derived from the key, so an id can never disagree with its key; it reveals
    nothing about the key (a truncated, domain-separated SHA-256).
    """
    return _key_id(_event_key(key)).hex()


def _event_key(key: object) -> bytes:
    if not isinstance(key, bytes) or len(key) != EVENT_KEY_BYTES:
        raise ValueError(f"an event key is {EVENT_KEY_BYTES} bytes")
    return key


# --- field checks, shared by the decoders and the issuer --------------------
#
# Every check raises TicketError("malformed"); issue_ticket turns that into a
# ValueError. Running the decoder over what we are about to sign is how the
# issuer guarantees it never writes a ticket that open_ticket would refuse.


def _malformed(message: str) -> NoReturn:
    raise TicketError("malformed", message)


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_CREDENTIAL_ID = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HOSTNAME = re.compile(
    r"(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
)
_MAX_TIME = 2**63 - 1
_E = TypeVar("_E", bound=StrEnum)


def _object(value: object, what: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        _malformed(f"{what} must be an object")
    if extra := sorted(set(value) - keys):
        _malformed(f"{what} has unknown fields {extra}")
    if missing := sorted(keys - set(value)):
        _malformed(f"{what} lacks fields {missing}")
    return value


def _integer(value: object, what: str, low: int, high: int) -> int:
    if type(value) is not int or not low <= value <= high:
        _malformed(f"{what} must be an integer from {low} to {high}")
    return value


def _text(value: object, what: str, max_length: int, *, min_length: int = 1) -> str:
    if type(value) is not str:
        _malformed(f"{what} must be a string")
    if not min_length <= len(value) <= max_length:
        _malformed(f"{what} must be {min_length} to {max_length} characters")
    if _CONTROL.search(value):
        _malformed(f"{what} holds control characters")
    return value


def _pattern(value: object, what: str, pattern: re.Pattern[str]) -> str:
    if type(value) is not str or not pattern.fullmatch(value):
        _malformed(f"{what} is not valid")
    return value


def _enum(value: object, what: str, kind: type[_E]) -> _E:
    for member in kind:
        if value == member.value and type(value) is str:
            return member
    _malformed(f"{what} must be one of {[member.value for member in kind]}")


def _base64(value: object, what: str, max_bytes: int) -> bytes:
    if type(value) is not str or len(value) > 4 * (max_bytes // 3 + 1):
        _malformed(f"{what} must be base64 of at most {max_bytes} bytes")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        _malformed(f"{what} must be base64")
    # One byte form per value: the decoder would otherwise accept unused pad bits.
    if base64.b64encode(raw).decode() != value:
        _malformed(f"{what} is not canonical base64")
    return raw


def _host(value: object) -> str:
    if type(value) is not str:
        _malformed("server host must be a string")
    try:
        ipaddress.ip_address(value)
    except ValueError:
        if not _HOSTNAME.fullmatch(value):
            _malformed("server host must be a DNS name or an IP address")
    return value


def _center_url(value: object) -> str:
    url = _text(value, "center_url", 2048)
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname or " " in url:
        _malformed("center_url must be an http(s) URL")
    return url


def _ca_pem(value: object) -> str | None:
    if value is None:
        return None
    if type(value) is not str or not 0 < len(value) <= MAX_CA_PEM or not value.isascii():
        _malformed(f"ca_pem must be ASCII PEM of at most {MAX_CA_PEM} characters")
    try:
        x509.load_pem_x509_certificates(value.encode())
    except ValueError:
        _malformed("ca_pem holds no readable certificate")
    return value


_SERVER_KEYS = frozenset({"name", "host", "port", "zone", "spki_sha256"})


def _server(value: object) -> ServerEntry:
    obj = _object(value, "server", _SERVER_KEYS)
    pins = obj["spki_sha256"]
    if not isinstance(pins, list) or len(pins) > MAX_PINS:
        _malformed(f"server pins must be a list of at most {MAX_PINS}")
    return ServerEntry(
        name=_pattern(obj["name"], "server name", names.SERVER_NAME),
        host=_host(obj["host"]),
        port=_integer(obj["port"], "server port", 1, 65535),
        zone=_enum(obj["zone"], "server zone", Zone),
        spki_sha256=tuple(_pin(pin) for pin in pins),
    )


def _pin(value: object) -> str:
    if len(_base64(value, "spki_sha256 pin", 32)) != 32:
        _malformed("a spki_sha256 pin is 32 bytes")
    return str(value)


def _servers(value: object) -> tuple[ServerEntry, ...]:
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_SERVERS:
        _malformed(f"servers must be a list of 1 to {MAX_SERVERS}")
    servers = tuple(_server(item) for item in value)
    if len({server.name for server in servers}) != len(servers):
        _malformed("server names must be unique")
    return servers


def _cookies(value: object) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > MAX_COOKIES:
        _malformed(f"cookies must be an object of at most {MAX_COOKIES}")
    for name, cookie in value.items():
        if not names.is_cookie_name(name):
            _malformed("a cookie name is not an RFC 6265 token")
        # The value is a bearer secret: the message never quotes it.
        if type(cookie) is not str or len(cookie) > MAX_COOKIE_VALUE:
            _malformed(f"cookie {name} must be a string of at most {MAX_COOKIE_VALUE}")
        if not names.is_cookie_value(cookie):
            _malformed(f"cookie {name} holds characters RFC 6265 does not allow")
    return dict(value)


def _validity(issued_at: int, not_after: int) -> None:
    if not issued_at < not_after <= issued_at + MAX_LIFETIME:
        _malformed(f"a ticket lives more than 0 and at most {MAX_LIFETIME} seconds")


def _check_time(issued_at: int, not_after: int, now: int, leeway: int) -> None:
    if now + leeway < issued_at:
        raise TicketError("not_yet_valid", f"valid from {issued_at}, it is now {now}")
    if now - leeway >= not_after:
        raise TicketError("expired", f"expired at {not_after}, it is now {now}")


# --- canonical JSON ---------------------------------------------------------


def _encode_json(value: object) -> bytes:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            _malformed(f"field {key!r} appears twice")
        result[key] = value
    return result


def _no_float(text: str) -> NoReturn:
    _malformed("numbers must be integers")


def _decode_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_pairs,
            parse_float=_no_float,
            parse_constant=_no_float,
        )
        # One byte form per ticket: what we verify is what we would have signed.
        canonical = _encode_json(value) == data
    except (ValueError, RecursionError):
        _malformed(f"{what} is not JSON")
    if not canonical:
        _malformed(f"{what} is not canonical JSON")
    if not isinstance(value, dict):
        _malformed(f"{what} must be a JSON object")
    return value


# --- the sealed credential ----------------------------------------------------

_SEALED_HEADER = struct.Struct(">4sQQQ8s12s")
_SIGNATURE_BYTES = 64
_TAG_BYTES = 16
_CREDENTIAL_KEYS = frozenset({"id", "secret", "username", "display_name", "role"})


@dataclass(frozen=True, slots=True)
class _SealedHeader:
    event_id: int
    issued_at: int
    not_after: int
    key_id: bytes


def _check_magic(data: bytes, magic: bytes, what: str) -> None:
    if data[:3] == magic[:3] and data[3:4] != magic[3:4] and len(data) >= 4:
        raise TicketError("unsupported_version", f"{what} version {data[3:4]!r} is not known")
    if data[:4] != magic:
        _malformed(f"not a {what}")


def _sealed_header(sealed: object) -> _SealedHeader:
    """Check the layout of a sealed credential and read its header (not its signature)."""
    if not isinstance(sealed, bytes):
        _malformed("a sealed credential is bytes")
    if len(sealed) > MAX_SEALED_BYTES:
        _malformed(f"a sealed credential is at most {MAX_SEALED_BYTES} bytes")
    _check_magic(sealed, SEALED_MAGIC, "sealed credential")
    if len(sealed) < _SEALED_HEADER.size + _TAG_BYTES + 2 + _SIGNATURE_BYTES:
        _malformed("the sealed credential is truncated")
    _, event_id, issued_at, not_after, key_id, _ = _SEALED_HEADER.unpack_from(sealed)
    _validity(issued_at, not_after)
    if not 1 <= event_id <= _MAX_TIME:
        _malformed("the event id is out of range")
    return _SealedHeader(event_id, issued_at, not_after, key_id)


def sealed_event_id(sealed: bytes) -> int:
    """The event a sealed credential is for, read from its clear header, unverified.

    For routing only: a live server holding several events picks the room by
    it, and that room then checks the whole credential. Raises
    :class:`TicketError` if ``sealed`` is not laid out as a sealed credential.
    """
    return _sealed_header(sealed).event_id


def sealed_issued_at(sealed: bytes) -> int:
    """When a sealed credential was issued (Unix seconds, the Center's clock), unverified."""
    return _sealed_header(sealed).issued_at


def _verify(public_key: Ed25519PublicKey, signature: bytes, signed: bytes, what: str) -> None:
    try:
        public_key.verify(signature, signed)
    except InvalidSignature:
        raise TicketError("bad_signature", f"the {what} is not signed by the Center") from None


def _seal(
    signing_key: Ed25519PrivateKey,
    event_key: bytes,
    event_id: int,
    issued_at: int,
    not_after: int,
    credential: Credential,
) -> bytes:
    plaintext = _encode_json(
        {
            "id": credential.credential_id,
            "secret": credential.secret,
            "username": credential.username,
            "display_name": credential.display_name,
            "role": str(credential.role),
        }
    )
    _credential(_decode_json(plaintext, "credential"))
    # Random 96-bit nonces: an event key seals far fewer than 2**32 credentials
    # (NIST SP 800-38D §8.3), so a nonce never repeats under one key.
    nonce = os.urandom(12)
    header = _SEALED_HEADER.pack(
        SEALED_MAGIC, event_id, issued_at, not_after, _key_id(event_key), nonce
    )
    # The associated data is the header: event id, validity and key id are
    # bound to the ciphertext even without the signature.
    ciphertext = AESGCM(event_key).encrypt(nonce, plaintext, header)
    sealed = header + ciphertext
    sealed += signing_key.sign(sealed)
    if len(sealed) > MAX_SEALED_BYTES:
        _malformed(f"the sealed credential would exceed {MAX_SEALED_BYTES} bytes")
    return sealed


def _credential(value: object) -> Credential:
    obj = _object(value, "credential", _CREDENTIAL_KEYS)
    return Credential(
        credential_id=_pattern(obj["id"], "credential id", _CREDENTIAL_ID),
        secret=_pattern(obj["secret"], "credential secret", _CREDENTIAL_ID),
        username=_text(obj["username"], "username", 128),
        display_name=_text(obj["display_name"], "display name", 200, min_length=0),
        role=_enum(obj["role"], "role", Role),
    )


def verify_sealed_credential(
    sealed: bytes,
    *,
    center_public_key: Ed25519PublicKey,
    event_id: int,
    event_keys: Collection[bytes],
    now: int,
    leeway: int = DEFAULT_LEEWAY,
) -> Credential:
    """Check what a participant presents to a live server, and open it.

    Checks, in order: layout, the Center's signature, the event, the
    validity period, that one of ``event_keys`` (this event's keys, several
    during a rotation) sealed it, and decrypts. Whether the credential is on
    the list the Controller gave, unrevoked and not already connected is the
    caller's check.
    """
    keys = {_key_id(_event_key(key)): key for key in event_keys}
    header = _sealed_header(sealed)
    _verify(center_public_key, sealed[-_SIGNATURE_BYTES:], sealed[:-_SIGNATURE_BYTES], "credential")
    if header.event_id != event_id:
        raise TicketError(
            "wrong_event", f"the credential is for event {header.event_id}, not {event_id}"
        )
    _check_time(header.issued_at, header.not_after, now, leeway)
    key = keys.get(header.key_id)
    if key is None:
        raise TicketError(
            "wrong_event",
            f"sealed under event key {header.key_id.hex()}, which this event's servers lack",
        )
    body = sealed[_SEALED_HEADER.size : -_SIGNATURE_BYTES]
    nonce = sealed[_SEALED_HEADER.size - 12 : _SEALED_HEADER.size]
    try:
        plaintext = AESGCM(key).decrypt(nonce, body, sealed[: _SEALED_HEADER.size])
    except InvalidTag:
        raise TicketError(
            "bad_credential", "the credential does not open with the event key"
        ) from None
    return _credential(_decode_json(plaintext, "credential"))


# --- the ticket file ------------------------------------------------------------

_TICKET_KEYS = frozenset(
    {
        "event_id",
        "title",
        "center_url",
        "issued_at",
        "not_after",
        "username",
        "display_name",
        "role",
        "servers",
        "ca_pem",
        "cookies",
        "sealed_credential",
    }
)
_KEY_BYTES = 32
_TICKET_MIN = len(TICKET_MAGIC) + _KEY_BYTES + 2 + _SIGNATURE_BYTES


def _contents(body: bytes, center_key: bytes) -> TicketContents:
    obj = _object(_decode_json(body, "ticket"), "ticket", _TICKET_KEYS)
    issued_at = _integer(obj["issued_at"], "issued_at", 0, _MAX_TIME)
    not_after = _integer(obj["not_after"], "not_after", 0, _MAX_TIME)
    _validity(issued_at, not_after)
    return TicketContents(
        event_id=_integer(obj["event_id"], "event_id", 1, _MAX_TIME),
        title=_text(obj["title"], "title", 300),
        center_url=_center_url(obj["center_url"]),
        issued_at=issued_at,
        not_after=not_after,
        username=_text(obj["username"], "username", 128),
        display_name=_text(obj["display_name"], "display name", 200, min_length=0),
        role=_enum(obj["role"], "role", Role),
        servers=_servers(obj["servers"]),
        ca_pem=_ca_pem(obj["ca_pem"]),
        cookies=_cookies(obj["cookies"]),
        sealed_credential=_base64(obj["sealed_credential"], "sealed_credential", MAX_SEALED_BYTES),
        center_key=center_key,
    )


def _raw_public_key(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def issue_ticket(
    *,
    signing_key: Ed25519PrivateKey,
    event_key: bytes,
    event_id: int,
    title: str,
    center_url: str,
    servers: Sequence[ServerEntry],
    credential: Credential,
    now: int,
    lifetime: int = DEFAULT_LIFETIME,
    ca_pem: str | None = None,
    cookies: Mapping[str, str] | None = None,
) -> bytes:
    """Write a join ticket (Center side). ``now`` and ``lifetime`` are seconds.

    Raises ValueError for inputs no ticket may hold (too many servers, a
    cookie with characters RFC 6265 forbids, an unknown zone…); the message
    never quotes a cookie value.

    Format:: ticket file
        magic        4    b"THT1"
        center key   32   raw Ed25519 public key of the signer
        body         n    canonical JSON, UTF-8 (docs/tickets.md lists the fields)
        signature    64   Ed25519 over all the bytes above
    """
    if type(now) is not int or not 0 <= now <= _MAX_TIME - MAX_LIFETIME:
        raise ValueError("now must be Unix seconds")
    if type(lifetime) is not int or not 0 < lifetime <= MAX_LIFETIME:
        raise ValueError(f"lifetime must be 1 to {MAX_LIFETIME} seconds")
    _event_key(event_key)
    not_after = now + lifetime
    try:
        if type(event_id) is not int or not 1 <= event_id <= _MAX_TIME:
            _malformed("event_id must be a positive integer")
        sealed = _seal(signing_key, event_key, event_id, now, not_after, credential)
        body = {
            "event_id": event_id,
            "title": title,
            "center_url": center_url,
            "issued_at": now,
            "not_after": not_after,
            "username": credential.username,
            "display_name": credential.display_name,
            "role": str(credential.role),
            "servers": [
                {
                    "name": server.name,
                    "host": server.host,
                    "port": server.port,
                    "zone": str(server.zone),
                    "spki_sha256": list(server.spki_sha256),
                }
                for server in servers
            ],
            "ca_pem": ca_pem,
            "cookies": dict(cookies or {}),
            "sealed_credential": base64.b64encode(sealed).decode(),
        }
        try:
            encoded = _encode_json(body)
        except (TypeError, ValueError):
            _malformed("a field has a type JSON cannot carry")
        center_key = _raw_public_key(signing_key.public_key())
        _contents(encoded, center_key)
        signed = TICKET_MAGIC + center_key + encoded
        if len(signed) + _SIGNATURE_BYTES > MAX_TICKET_BYTES:
            _malformed(f"the ticket would exceed {MAX_TICKET_BYTES} bytes")
    except TicketError as error:
        raise ValueError(f"cannot issue this ticket: {error.message}") from None
    return signed + signing_key.sign(signed)


def open_ticket(
    data: bytes,
    *,
    center_public_key: Ed25519PublicKey | None,
    now: int,
    leeway: int = DEFAULT_LEEWAY,
) -> TicketContents:
    """Read a join ticket (participant side).

    With ``center_public_key`` (the key of a Center the user registered), the
    ticket must be signed by it. With ``None`` it is checked against the key
    it carries, which catches corruption but not forgery: anyone can sign with
    a key of their own. Pin ``center_key`` of the first ticket from a Center
    and pass it from then on. Either way the live server, which knows the
    Center's key, is what refuses a forged credential.
    """
    if not isinstance(data, bytes):
        _malformed("a ticket is bytes")
    if len(data) > MAX_TICKET_BYTES:
        _malformed(f"a ticket is at most {MAX_TICKET_BYTES} bytes")
    _check_magic(data, TICKET_MAGIC, "Townhall ticket")
    if len(data) < _TICKET_MIN:
        _malformed("the ticket is truncated")
    key_start = len(TICKET_MAGIC)
    carried = data[key_start : key_start + _KEY_BYTES]
    if center_public_key is None:
        try:
            signer = Ed25519PublicKey.from_public_bytes(carried)
        except ValueError:
            raise TicketError("bad_signature", "the ticket carries no usable key") from None
    else:
        if carried != _raw_public_key(center_public_key):
            raise TicketError(
                "bad_signature", "the ticket is signed by another key than the Center's"
            )
        signer = center_public_key
    signed, signature = data[:-_SIGNATURE_BYTES], data[-_SIGNATURE_BYTES:]
    _verify(signer, signature, signed, "ticket")
    contents = _contents(signed[key_start + _KEY_BYTES :], carried)
    # The sealed credential must be this ticket's own: same event, same
    # validity, same signer. A credential pasted in from another ticket fails
    # here even if the paster re-signed the file with a key of their own.
    sealed = contents.sealed_credential
    header = _sealed_header(sealed)
    _verify(signer, sealed[-_SIGNATURE_BYTES:], sealed[:-_SIGNATURE_BYTES], "credential")
    if (header.event_id, header.issued_at, header.not_after) != (
        contents.event_id,
        contents.issued_at,
        contents.not_after,
    ):
        _malformed("the sealed credential belongs to another ticket")
    _check_time(contents.issued_at, contents.not_after, now, leeway)
    return contents


# --- certificates and keys ----------------------------------------------------


def spki_sha256(certificate: bytes | str) -> str:
    """The pin of a certificate (PEM or DER): base64 SHA-256 of its SubjectPublicKeyInfo.

    The same value as ``openssl x509 -pubkey -noout | openssl pkey -pubin
    -outform der | openssl dgst -sha256 -binary | base64`` (RFC 7469 §2.4).
    """
    data = certificate.encode() if isinstance(certificate, str) else certificate
    if data.lstrip().startswith(b"-----BEGIN"):
        cert = x509.load_pem_x509_certificate(data)
    else:
        cert = x509.load_der_x509_certificate(data)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the Center's Ed25519 signing key (PKCS#8 PEM, unencrypted)."""
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} holds no Ed25519 private key")
    return key


def save_signing_key(key: Ed25519PrivateKey, path: Path) -> None:
    """Write the key as PKCS#8 PEM with mode 0600, replacing any file atomically."""
    data = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        # Replacing rather than truncating: an old file's wider mode is not kept.
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
