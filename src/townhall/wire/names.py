"""The words every part of Townhall shares, each rule written once.

A live server's name, the zone it stands in, the state of a child's link Up,
the cookie names and values a ticket can carry, and the characters no name
or label shown to people may hold. The Manager, the Center, the ticket, the
Controller's link and the live server all check these; when each kept its own
copy they drifted (the Manager once accepted ``-edge``, a name no ticket
could carry). The module lives in ``townhall.wire`` because the wire protocol
needs the character class and ``wire`` depends on nothing else in the
project; it imports only the standard library, and any package may import
it. docs/architecture.md lists what lives where.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

__all__ = [
    "COOKIE_NAME_MAX",
    "COOKIE_VALUE_MAX",
    "LiveState",
    "NOT_IN_LABELS",
    "SERVER_NAME",
    "SERVER_NAME_MAX",
    "SERVER_NAME_PATTERN",
    "SERVER_NAME_RULE",
    "ServerState",
    "Upstream",
    "Zone",
    "is_cookie_name",
    "is_cookie_value",
    "is_server_name",
]

# --- live servers ----------------------------------------------------------------------------

SERVER_NAME_MAX: Final = 64
# Not starting with "." "_" or "-": a name is also a certificate's common name and
# a command-line argument, where a leading "-" reads as an option.
SERVER_NAME_PATTERN: Final = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
SERVER_NAME: Final = re.compile(SERVER_NAME_PATTERN)
SERVER_NAME_RULE: Final = (
    "1 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit"
)


def is_server_name(value: object) -> bool:
    return isinstance(value, str) and SERVER_NAME.fullmatch(value) is not None


class Zone(StrEnum):
    """Where a live server stands: ``internal`` users reach both, external ones only ``dmz``."""

    INTERNAL = "internal"
    DMZ = "dmz"


class Upstream(StrEnum):
    """The state of a child's link Up (the live room's state machine, reported to the
    Controller and shown by the Center)."""

    NONE = "none"  # the main server, or nothing assigned yet
    CONNECTING = "connecting"  # ConnectUpstream asked for; waiting for the transport
    HANDSHAKE = "handshake"  # Hello and Auth; waiting for AuthOk
    SYNCING = "syncing"  # members and Resync sent Up; waiting for Synced
    UP = "up"
    WAITING = "waiting"  # lost; a wakeup after the backoff tries again


class LiveState(StrEnum):
    """An event's tree as the Controller reports it and the Center shows it."""

    SCHEDULED = "scheduled"  # not due yet: the Controller has not reported
    PREPARING = "preparing"  # assignments sent, the tree not all linked yet
    READY = "ready"  # the main holds the event, every child is linked Up
    DEGRADED = "degraded"  # a server without control link, a child not up once ready, no tree
    ENDED = "ended"  # torn down: over (end + grace) or cancelled


@dataclass(frozen=True, slots=True)
class ServerState:
    """One server of an event's tree, as the Controller last saw it and the Center shows it."""

    name: str
    role: str  # "main" | "child"
    parent: str | None
    zone: str  # a Zone's value
    address: str  # host:port ([v6]:port) where participants and children reach it
    connected: bool  # holds a control link to the Controller now
    upstream: str  # an Upstream's value: "none" for the main, else the child's link Up
    participants: int


# --- what people see ---------------------------------------------------------------------------

# C0 and C1 controls, lone surrogates, and the bidirectional overrides and isolates
# that would let a name display as someone else's (CVE-2021-42574). A character
# class body, to put inside [...] or [^...].
NOT_IN_LABELS: Final = "\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069"

# --- cookies a ticket carries (RFC 6265 §4.1.1) ------------------------------------------------

COOKIE_NAME_MAX: Final = 128
COOKIE_VALUE_MAX: Final = 4096
# cookie-name is an RFC 2616 token; cookie-value is cookie-octets, optionally in
# double quotes. This keeps CR/LF and ";" out of the Cookie header built from them.
_COOKIE_NAME: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,128}")
_COOKIE_OCTETS: Final = r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"
_COOKIE_VALUE: Final = re.compile(f'{_COOKIE_OCTETS}|"{_COOKIE_OCTETS}"')


def is_cookie_name(value: object) -> bool:
    return isinstance(value, str) and _COOKIE_NAME.fullmatch(value) is not None


def is_cookie_value(value: object) -> bool:
    return (
        isinstance(value, str)
        and len(value) <= COOKIE_VALUE_MAX
        and _COOKIE_VALUE.fullmatch(value) is not None
    )
