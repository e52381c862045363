"""The connection state machine as data: which side may send what, in which state.

Two tables, kept here so a script can draw the diagram in docs/protocol.md
from them (h11 does the same): ``TRANSITIONS`` for the handshake and closing,
and ``OPEN_TRAFFIC`` for what each role may send once the connection is open.
A media frame appears in them as its channel (``Channel.AUDIO``,
``Channel.VIDEO``). This module knows message classes but no bytes, no
sockets and no clocks; connection.py applies the tables.

Both sides run the same tables over the same conversation: a side applies a
transition when it sends a message and when it receives one, so a message one
side may send is exactly a message the other side accepts.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from townhall.wire.frames import Channel
from townhall.wire.messages import (
    AskQuestion,
    AttendanceChanged,
    Auth,
    AuthFailed,
    AuthOk,
    Banned,
    Bye,
    ChatMark,
    ChatPosted,
    ClosePoll,
    CloseStream,
    CreatePoll,
    EndEvent,
    Error,
    Evict,
    GiveFloor,
    Hello,
    LinkRequest,
    LowerHand,
    MediaDropped,
    MemberJoined,
    MemberLeft,
    Message,
    Mute,
    OpenPoll,
    OpenStream,
    Ping,
    PollUpdated,
    Pong,
    QuestionUpdated,
    RaiseHand,
    RecordingChanged,
    Refused,
    Remove,
    RequestKeyFrame,
    Resync,
    Role,
    RosterDone,
    RosterReset,
    RosterUpdate,
    RosterView,
    SendChat,
    SetRecording,
    SetSpeakingMode,
    SettleQuestion,
    SharePollResults,
    StateSnapshot,
    StreamClosed,
    StreamOpened,
    Synced,
    TakeFloor,
    UpstreamChanged,
    UpvoteQuestion,
    Vote,
    Welcome,
)

__all__ = ["OPEN_TRAFFIC", "TRANSITIONS", "Kind", "Side", "State"]

Kind = type[Message] | Channel
"""What the tables are keyed by: a message class, or a media channel."""


class Side(enum.Enum):
    CLIENT = "client"  # opened the connection and speaks first, with Hello
    SERVER = "server"  # accepted it

    @property
    def peer(self) -> Side:
        return Side.SERVER if self is Side.CLIENT else Side.CLIENT


class State(enum.Enum):
    AWAIT_HELLO = "await-hello"
    AWAIT_WELCOME = "await-welcome"
    AWAIT_AUTH = "await-auth"
    AWAIT_AUTH_RESULT = "await-auth-result"
    OPEN = "open"
    CLOSED = "closed"
    # Only local: the peer broke the protocol; we may still say Bye, then CLOSED.
    ERROR = "error"


_CLIENT, _SERVER = Side.CLIENT, Side.SERVER
_HANDSHAKE = (State.AWAIT_HELLO, State.AWAIT_WELCOME, State.AWAIT_AUTH, State.AWAIT_AUTH_RESULT)

TRANSITIONS: Final[Mapping[tuple[State, Side, Kind], State]] = MappingProxyType(
    {
        (State.AWAIT_HELLO, _CLIENT, Hello): State.AWAIT_WELCOME,
        (State.AWAIT_WELCOME, _SERVER, Welcome): State.AWAIT_AUTH,
        # A client probing servers (Intelligent Server Selection) pings before it
        # authenticates, and keeps the connection to the best server.
        (State.AWAIT_AUTH, _CLIENT, Ping): State.AWAIT_AUTH,
        (State.AWAIT_AUTH, _SERVER, Pong): State.AWAIT_AUTH,
        (State.AWAIT_AUTH, _CLIENT, Auth): State.AWAIT_AUTH_RESULT,
        (State.AWAIT_AUTH_RESULT, _CLIENT, Ping): State.AWAIT_AUTH_RESULT,
        (State.AWAIT_AUTH_RESULT, _SERVER, Pong): State.AWAIT_AUTH_RESULT,
        (State.AWAIT_AUTH_RESULT, _SERVER, AuthOk): State.OPEN,
        (State.AWAIT_AUTH_RESULT, _SERVER, AuthFailed): State.CLOSED,
        **{(State.OPEN, side, kind): State.OPEN for side in Side for kind in (Ping, Pong, Error)},
        **{(state, side, Bye): State.CLOSED for state in _HANDSHAKE for side in Side},
        (State.OPEN, _CLIENT, Bye): State.CLOSED,
        (State.OPEN, _SERVER, Bye): State.CLOSED,
        (State.ERROR, _CLIENT, Bye): State.CLOSED,
        (State.ERROR, _SERVER, Bye): State.CLOSED,
    }
)


def _kinds(*kinds: Kind) -> frozenset[Kind]:
    return frozenset(kinds)


_FLOOR_COMMANDS: Final = (
    RaiseHand,
    LowerHand,
    GiveFloor,
    TakeFloor,
    Mute,
    Remove,
    SetSpeakingMode,
    EndEvent,
    SetRecording,
)
_POLL_COMMANDS: Final = (CreatePoll, OpenPoll, ClosePoll, SharePollResults, Vote)
_QUESTION_COMMANDS: Final = (AskQuestion, UpvoteQuestion, SettleQuestion)
_MEDIA: Final = (Channel.AUDIO, Channel.VIDEO)

# What each (role, sending side) may send in OPEN, beyond Ping, Pong, Error and
# Bye. A participant never sends what only a server may say (a roster, a chat
# in someone else's name), so a participant connection cannot act as a server
# link. Server links carry the event Down and a child's members Up, with the
# link messages (MemberJoined ... Banned) that only server links carry; the
# Controller link's messages come with townhall.controller.
OPEN_TRAFFIC: Final[Mapping[tuple[Role, Side], frozenset[Kind]]] = MappingProxyType(
    {
        (Role.PARTICIPANT, _CLIENT): _kinds(
            SendChat,
            *_FLOOR_COMMANDS,
            *_POLL_COMMANDS,
            *_QUESTION_COMMANDS,
            OpenStream,
            CloseStream,
            RequestKeyFrame,
            *_MEDIA,
        ),
        (Role.PARTICIPANT, _SERVER): _kinds(
            ChatPosted,
            StateSnapshot,
            RosterUpdate,
            RosterView,
            AttendanceChanged,
            StreamOpened,
            StreamClosed,
            RequestKeyFrame,
            MediaDropped,
            UpstreamChanged,
            PollUpdated,
            QuestionUpdated,
            RecordingChanged,
            *_MEDIA,
        ),
        (Role.SERVER_LINK, _CLIENT): _kinds(
            ChatPosted,
            RosterUpdate,
            StreamOpened,
            StreamClosed,
            MemberJoined,
            MemberLeft,
            LinkRequest,
            Resync,
            RequestKeyFrame,
            *_MEDIA,
        ),
        (Role.SERVER_LINK, _SERVER): _kinds(
            ChatPosted,
            StateSnapshot,
            RosterUpdate,
            StreamOpened,
            StreamClosed,
            Mute,
            Remove,
            ChatMark,
            Synced,
            RosterReset,
            RosterDone,
            Evict,
            Refused,
            Banned,
            RecordingChanged,
            RequestKeyFrame,
            PollUpdated,
            QuestionUpdated,
            *_MEDIA,
        ),
        (Role.CONTROLLER_LINK, _CLIENT): _kinds(),
        (Role.CONTROLLER_LINK, _SERVER): _kinds(),
    }
)
