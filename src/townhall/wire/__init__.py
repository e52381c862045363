"""The live protocol, sans-IO: frames, messages and the connection state machine.

Bytes in, events out, bytes to send, with time passed in as ``now``; no
sockets, TLS, asyncio, clocks or randomness (a test enforces it), so
``townhall.live`` and ``townhall.client`` drive it over whatever transport
they have. It depends on nothing else in Townhall. docs/protocol.md is the
specification: frame layout byte by byte, messages, states, a sample session.

Modules, each importing only those above it:

- ``errors``: ``LocalProtocolError`` (our misuse) and ``RemoteProtocolError``
  (the peer's).
- ``frames``: the 8-byte frame header, channels and their size limits, and
  ``MediaFrame`` (encoded once, sent to many).
- ``messages``: the typed control and data messages (msgspec Structs as
  msgpack arrays), their checks, and ``encode_message``.
- ``states``: the state machine as tables (``TRANSITIONS``, ``OPEN_TRAFFIC``).
- ``connection``: ``Connection``, which applies the tables to one connection,
  with its keepalive timers.
"""

from townhall.wire.connection import NEED_DATA, Connection, ConnectionClosed, Event, Settings
from townhall.wire.errors import LocalProtocolError, ProtocolError, RemoteProtocolError
from townhall.wire.frames import MAX_PAYLOAD, Channel, MediaFrame, seq_delta
from townhall.wire.messages import (
    ALPN,
    PROTOCOL_VERSION,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Banned,
    Bye,
    ByeReason,
    ChatMark,
    ChatPosted,
    CloseStream,
    Codec,
    EncodedMessage,
    EndEvent,
    Error,
    ErrorCode,
    Evict,
    GiveFloor,
    Hello,
    LinkRequest,
    Load,
    LowerHand,
    Member,
    MemberJoined,
    MemberLeft,
    Message,
    Mute,
    OpenStream,
    Ping,
    Pong,
    RaiseHand,
    Refused,
    Remove,
    RequestKeyFrame,
    Resync,
    Role,
    RosterDone,
    RosterReset,
    RosterUpdate,
    SendChat,
    SetSpeakingMode,
    SpeakingMode,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamKind,
    StreamOpened,
    Synced,
    TakeFloor,
    Welcome,
    encode_message,
)
from townhall.wire.states import Side, State

__all__ = [
    "ALPN",
    "MAX_PAYLOAD",
    "NEED_DATA",
    "PROTOCOL_VERSION",
    "Auth",
    "AuthFailed",
    "AuthFailure",
    "AuthOk",
    "Banned",
    "Bye",
    "ByeReason",
    "ChatMark",
    "Channel",
    "ChatPosted",
    "CloseStream",
    "Codec",
    "Connection",
    "ConnectionClosed",
    "EncodedMessage",
    "EndEvent",
    "Error",
    "ErrorCode",
    "Evict",
    "Event",
    "GiveFloor",
    "Hello",
    "LinkRequest",
    "Load",
    "LocalProtocolError",
    "LowerHand",
    "MediaFrame",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "Mute",
    "OpenStream",
    "Ping",
    "Pong",
    "ProtocolError",
    "RaiseHand",
    "Refused",
    "RemoteProtocolError",
    "Remove",
    "RequestKeyFrame",
    "Role",
    "Resync",
    "RosterDone",
    "RosterReset",
    "RosterUpdate",
    "SendChat",
    "Settings",
    "SetSpeakingMode",
    "Side",
    "SpeakingMode",
    "State",
    "StateSnapshot",
    "StreamClosed",
    "StreamInfo",
    "StreamKind",
    "StreamOpened",
    "Synced",
    "TakeFloor",
    "Welcome",
    "encode_message",
    "seq_delta",
]
