"""Control and data messages: their fields, their limits, and their msgpack encoding.

Each message is a frozen msgspec Struct, encoded as a msgpack array of its
fields in the order written here (``array_like``: no field names on the wire,
so no duplicate keys to disagree about), and carried in one frame whose
channel and type byte say which message it is (``MESSAGE_TYPES``). Decoding
checks every field: type, range, length, enum value, character set, and the
few rules that span fields (``check``). Events are in the past tense,
commands in the imperative.

This module knows frames only to wrap a payload in one; it does not know in
which state a message is allowed (states.py) nor anything of sockets and
clocks. docs/protocol.md lists the messages with their fields.

Format::

    CONTROL or DATA payload = msgpack array [field 1, field 2, ...]
    str    msgpack str (UTF-8), limits in characters unless said otherwise
    bytes  msgpack bin
    int    msgpack int, ranges as annotated (u32, u64)
    enum   msgpack str, its value ("participant", "opus", ...)
    record a nested msgpack array (Load, Member, StreamInfo)
    None   msgpack nil
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Annotated, Any, Final

import msgspec
from msgspec import Meta

from townhall.wire.errors import LocalProtocolError, RemoteProtocolError
from townhall.wire.frames import Channel, pack_frame
from townhall.wire.names import NOT_IN_LABELS

__all__ = [
    "CHAT_TEXT_MAX_BYTES",
    "DISPLAY_NAME_MAX",
    "BANNED_CHUNK",
    "FORWARDED_COMMANDS",
    "MAX_STREAMS",
    "MAX_POLL_OPTIONS",
    "MESSAGE_TYPES",
    "PROTOCOL_VERSION",
    "ROSTER_CHUNK",
    "AskQuestion",
    "AttendanceChanged",
    "Auth",
    "AuthFailed",
    "AuthFailure",
    "AuthOk",
    "Banned",
    "Bye",
    "ByeReason",
    "ChatMark",
    "ChatPosted",
    "CloseStream",
    "ClosePoll",
    "Codec",
    "CreatePoll",
    "EncodedMessage",
    "EndEvent",
    "Error",
    "ErrorCode",
    "Evict",
    "GiveFloor",
    "Hello",
    "LinkRequest",
    "Load",
    "LowerHand",
    "MediaDropped",
    "Member",
    "MemberJoined",
    "MemberLeft",
    "Message",
    "Mute",
    "OpenPoll",
    "OpenStream",
    "Poll",
    "PollState",
    "PollUpdated",
    "Question",
    "QuestionState",
    "QuestionUpdated",
    "Ping",
    "Pong",
    "RaiseHand",
    "RecordingChanged",
    "RecordingState",
    "Refused",
    "Remove",
    "Role",
    "RosterDone",
    "RosterReset",
    "RosterUpdate",
    "RosterView",
    "Resync",
    "SendChat",
    "SetRecording",
    "SetSpeakingMode",
    "SettleQuestion",
    "SharePollResults",
    "SpeakingMode",
    "StateSnapshot",
    "StreamClosed",
    "StreamDrops",
    "StreamInfo",
    "StreamKind",
    "StreamOpened",
    "Synced",
    "TakeFloor",
    "UpstreamChanged",
    "UpvoteQuestion",
    "Vote",
    "Welcome",
    "decode_message",
    "encode_message",
    "address_of",
    "message_class",
]

PROTOCOL_VERSION: Final = 2  # 2: RosterView, AttendanceChanged
ALPN: Final = "townhall/1"  # what a TLS client and server agree on for this protocol
CHAT_TEXT_MAX_BYTES: Final = 4096

# No C0 or C1 controls anywhere; in names and labels also no bidirectional
# overrides, which would let a name display as someone else's (names.NOT_IN_LABELS).
_LABEL_CHARS = NOT_IN_LABELS
_TEXT_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f"  # tab, LF and CR are fine in chat
_NOT_LABEL = re.compile(f"[{_LABEL_CHARS}]")

Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=rf"\A[^{_LABEL_CHARS}]+\Z")]
DISPLAY_NAME_MAX: Final = 200  # characters, as a ticket's display name (townhall.ticket)
# What people see of a member; the Name stays its identity. "" (older peers): show the Name.
DisplayName = Annotated[str, Meta(max_length=DISPLAY_NAME_MAX, pattern=rf"\A[^{_LABEL_CHARS}]*\Z")]
Identifier = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"\A[A-Za-z0-9._:-]+\Z")]
Title = Annotated[str, Meta(max_length=256, pattern=rf"\A[^{_LABEL_CHARS}]*\Z")]
Reason = Annotated[str, Meta(max_length=1024, pattern=rf"\A[^{_LABEL_CHARS}]*\Z")]
ChatText = Annotated[
    str, Meta(min_length=1, max_length=CHAT_TEXT_MAX_BYTES, pattern=rf"\A[^{_TEXT_CHARS}]+\Z")
]
Version = Annotated[int, Meta(ge=1, le=0xFFFF)]
U32 = Annotated[int, Meta(ge=0, le=0xFFFF_FFFF)]
# msgpack itself ends at 2**64 - 1, and msgspec takes no upper bound past int64.
U64 = Annotated[int, Meta(ge=0)]
Ticket = Annotated[bytes, Meta(min_length=1, max_length=8192)]
CredentialId = Annotated[str, Meta(pattern=r"\A[A-Za-z0-9_-]{8,64}\Z")]
MemberRole = Annotated[str, Meta(pattern=r"\A(participant|presenter|moderator)\Z")]

# members (and names) per RosterUpdate: the largest, 48 members of 64-character
# names and 200-character display names of 4-byte characters, fits CONTROL
ROSTER_CHUNK: Final = 48
MAX_STREAMS: Final = 64  # streams listed in one StateSnapshot
BANNED_CHUNK: Final = 64  # credential ids in one Banned
MAX_POLL_OPTIONS: Final = 10  # choices in one poll
POLL_QUESTION_MAX: Final = 500  # characters of a poll's question
POLL_OPTION_MAX: Final = 100  # characters of one of its options
QUESTION_TEXT_MAX: Final = 1000  # characters of a Q&A question
ANSWER_TEXT_MAX: Final = 1000  # characters of a moderator's written answer
# Something shown in a list: not blank; a poll's texts are one line each (no
# controls, no bidirectional overrides), questions and answers may run over lines.
_LINE = rf"\A[^{_LABEL_CHARS}]*[^{_LABEL_CHARS}\s][^{_LABEL_CHARS}]*\Z"
_LINES = rf"\A[^{_TEXT_CHARS}]*[^{_TEXT_CHARS}\s][^{_TEXT_CHARS}]*\Z"
PollText = Annotated[str, Meta(min_length=1, max_length=POLL_QUESTION_MAX, pattern=_LINE)]
PollOption = Annotated[str, Meta(min_length=1, max_length=POLL_OPTION_MAX, pattern=_LINE)]
QuestionText = Annotated[str, Meta(min_length=1, max_length=QUESTION_TEXT_MAX, pattern=_LINES)]
AnswerText = Annotated[str, Meta(max_length=ANSWER_TEXT_MAX, pattern=rf"\A[^{_TEXT_CHARS}]*\Z")]
Choice = Annotated[int, Meta(ge=0, lt=MAX_POLL_OPTIONS)]


class Role(enum.Enum):
    """What the connecting side is, said once in Hello and fixed for the connection."""

    PARTICIPANT = "participant"
    SERVER_LINK = "server-link"  # a child live server connecting Up to its parent
    CONTROLLER_LINK = "controller-link"  # a live server connecting to the Controller


class AuthFailure(enum.Enum):
    BAD_TICKET = "bad-ticket"  # unreadable, bad signature, or not for this server
    EXPIRED = "expired"
    WRONG_EVENT = "wrong-event"  # valid, but for an event this server does not hold
    IN_USE = "in-use"  # the credential is bound to another live connection
    NOT_ALLOWED = "not-allowed"  # this role may not connect here
    EVENT_NOT_LIVE = "event-not-live"
    SERVER_FULL = "server-full"


class ErrorCode(enum.Enum):
    """Why one request was refused; the connection stays open."""

    NOT_ALLOWED = "not-allowed"  # e.g. GiveFloor from someone not a moderator
    UNKNOWN_MEMBER = "unknown-member"
    UNKNOWN_STREAM = "unknown-stream"
    RATE_LIMITED = "rate-limited"
    UNAVAILABLE = "unavailable"  # e.g. the server has no room for another stream
    NOT_FOUND = "not-found"  # no such poll, option of a poll, or question


class ByeReason(enum.Enum):
    """Why a connection ends."""

    NORMAL = "normal"
    PROTOCOL_ERROR = "protocol-error"
    UNSUPPORTED_VERSION = "unsupported-version"
    HANDSHAKE_TIMEOUT = "handshake-timeout"
    IDLE_TIMEOUT = "idle-timeout"
    AUTH_FAILED = "auth-failed"
    REMOVED = "removed"  # a moderator removed this participant
    REPLACED = "replaced"  # the same credential connected again elsewhere
    EVENT_ENDED = "event-ended"
    SHUTDOWN = "shutdown"
    CONNECTION_LOST = "connection-lost"  # EOF without Bye; never sent, only reported


class SpeakingMode(enum.Enum):
    MODERATED = "moderated"  # raise a hand; a moderator gives the floor
    OPEN = "open"  # anyone unmuted may speak, and take the floor
    LECTURE = "lecture"  # only moderators speak; hands cannot be raised


class PollState(enum.Enum):
    DRAFT = "draft"  # written, seen by moderators only
    OPEN = "open"  # votes are taken
    CLOSED = "closed"  # no more votes; the results stand


class QuestionState(enum.Enum):
    OPEN = "open"
    ANSWERED = "answered"  # a moderator answered in writing
    ANSWERED_LIVE = "answered-live"  # a moderator answered it aloud
    DISMISSED = "dismissed"


class RecordingState(enum.Enum):
    """Whether the event is being recorded now (``townhall.recording``)."""

    OFF = "off"  # no recorder, or it left
    RECORDING = "recording"
    PAUSED = "paused"  # a recorder is there; a moderator paused it


class Codec(enum.Enum):
    OPUS = "opus"
    VP8 = "vp8"
    H264 = "h264"  # for browsers that cannot encode VP8

    @property
    def channel(self) -> Channel:
        return Channel.AUDIO if self is Codec.OPUS else Channel.VIDEO


class StreamKind(enum.Enum):
    """What a stream shows, so a viewer can tell a camera from a shared screen."""

    MICROPHONE = "microphone"
    CAMERA = "camera"
    SCREEN = "screen"

    @classmethod
    def of(cls, codec: Codec, kind: StreamKind | None) -> StreamKind:
        """``kind``, or for a peer that sent none the one its codec implies."""
        if kind is not None:
            return kind
        return cls.MICROPHONE if codec is Codec.OPUS else cls.CAMERA


def _check_kind(codec: Codec, kind: StreamKind | None) -> None:
    if kind is not None and (kind is StreamKind.MICROPHONE) != (codec is Codec.OPUS):
        raise ValueError(f"a {kind.value} stream cannot carry {codec.value}")


class Record(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, array_like=True
):
    """A value nested inside a message."""


class Message(
    msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, array_like=True
):
    """Base of every control and data message."""

    def check(self) -> None:
        """Rules that span fields or that msgspec cannot say; raise ValueError."""


class Load(Record, frozen=True):
    participants: U32
    capacity: U32  # 0: no set limit


class Member(Record, frozen=True):
    name: Name  # the identity: floor, moderation, votes and chat ``to`` use it
    moderator: bool = False
    hand_raised: bool = False
    floor: bool = False
    muted: bool = False
    display_name: DisplayName = ""  # what to show; "" (older peers): the name

    @property
    def shown(self) -> str:
        """What a roster shows for this member: its display name, else its name."""
        return self.display_name or self.name


class StreamInfo(Record, frozen=True):
    stream_id: U32
    owner: Name
    codec: Codec
    kind: StreamKind | None = None  # None (older peers): StreamKind.of(codec, None)

    def check(self) -> None:
        _check_kind(self.codec, self.kind)


# -- handshake (CONTROL 1-9) ---------------------------------------------------


class Hello(Message, frozen=True):
    """Client: who I am and the highest protocol version I speak."""

    role: Role
    version: Version
    client: Name  # software and version, for logs: "townhall-python/0.1"


class Welcome(Message, frozen=True):
    """Server: the version both will speak (at most Hello's)."""

    version: Version
    server: Name


class Auth(Message, frozen=True):
    """Client: the credential part of a join ticket, or a server's enrolled key."""

    ticket: Ticket


class AuthOk(Message, frozen=True):
    """Server: the ticket holds; the connection is open as this member."""

    name: Name
    event: Identifier | None = None  # None on a controller link
    moderator: bool = False
    display_name: DisplayName = ""  # the member's display name; "": none, or an older server


class AuthFailed(Message, frozen=True):
    """Server: the ticket does not hold; the server closes the connection after it."""

    reason: AuthFailure
    message: Reason = ""


class Error(Message, frozen=True):
    """One request was refused; the connection stays open."""

    code: ErrorCode
    message: Reason = ""


class Ping(Message, frozen=True):
    """Either side: answer with a Pong carrying the same nonce, at once."""

    nonce: U64

    def pong(self, load: Load | None = None) -> Pong:
        return Pong(nonce=self.nonce, load=load)


class Pong(Message, frozen=True):
    """The answer to Ping; a server adds its load for Intelligent Server Selection."""

    nonce: U64
    load: Load | None = None


class Bye(Message, frozen=True):
    """Either side: I am closing the connection, and why."""

    reason: ByeReason
    message: Reason = ""

    @classmethod
    def for_error(cls, error: Exception) -> Bye:
        """The Bye to send after a RemoteProtocolError, its text made fit to send."""
        text = _NOT_LABEL.sub("?", str(error))[:1024]
        return cls(reason=ByeReason.PROTOCOL_ERROR, message=text)


# -- floor control (CONTROL 16-22): participant commands --------------------------


class RaiseHand(Message, frozen=True):
    pass


class LowerHand(Message, frozen=True):
    name: Name | None = None  # None: my own hand; a name: a moderator lowers it


class GiveFloor(Message, frozen=True):
    name: Name


class TakeFloor(Message, frozen=True):
    """The sender takes the floor: a moderator always, anyone in OPEN mode."""


class Mute(Message, frozen=True):
    name: Name
    muted: bool = True  # False unmutes


class Remove(Message, frozen=True):
    name: Name


class SetSpeakingMode(Message, frozen=True):
    mode: SpeakingMode


class EndEvent(Message, frozen=True):
    """A moderator ends the event for everyone, on every server of the tree."""


# -- recording (CONTROL 56-57) -----------------------------------------------------


class SetRecording(Message, frozen=True):
    """Participant: a recorder says it records (``recording``) or stops (``off``); a
    moderator pauses (``paused``) and resumes (``recording``) it. The main server's
    Floor decides (live/floor.py)."""

    state: RecordingState


class RecordingChanged(Message, frozen=True):
    """Server, parent: the event's recording state is now this; also after AuthOk
    while it is not ``off``. Every participant is shown that it is being recorded."""

    state: RecordingState


# -- streams (CONTROL 24-29) ------------------------------------------------------


class OpenStream(Message, frozen=True):
    """Participant: I want to send media with this codec; the server picks the id."""

    codec: Codec
    kind: StreamKind | None = None  # None: a microphone for Opus, a camera for video

    def check(self) -> None:
        _check_kind(self.codec, self.kind)


class CloseStream(Message, frozen=True):
    stream_id: U32


class StreamOpened(Message, frozen=True):
    """Server: media with this stream id belongs to this owner and codec."""

    stream: StreamInfo

    def check(self) -> None:
        self.stream.check()


class StreamClosed(Message, frozen=True):
    stream_id: U32


class RequestKeyFrame(Message, frozen=True):
    """Either way: a viewer of this VIDEO stream needs a key frame; toward the owner,
    whose answer is to encode its next frame as one."""

    stream_id: U32


class StreamDrops(Record, frozen=True):
    """How many frames of one stream a server dropped for one participant."""

    stream_id: U32
    frames: Annotated[int, Meta(ge=1, le=0xFFFF_FFFF)]


class MediaDropped(Message, frozen=True):
    """Server: media it dropped for you since its previous MediaDropped, because your
    connection fell behind (late or over your queue's bound); at most one a second.

    ``streams`` names the streams with the most drops (at most ``MAX_STREAMS``):
    the totals count every stream, so the listed frames add up to at most them.
    """

    audio_frames: U32
    video_frames: U32
    streams: Annotated[tuple[StreamDrops, ...], Meta(max_length=MAX_STREAMS)] = ()

    def check(self) -> None:
        if not self.audio_frames and not self.video_frames:
            raise ValueError("a MediaDropped drops at least one frame")
        ids = [stream.stream_id for stream in self.streams]
        if len(set(ids)) != len(ids):
            raise ValueError("a stream id appears twice")
        if sum(stream.frames for stream in self.streams) > self.audio_frames + self.video_frames:
            raise ValueError("the streams' frames add up to more than the totals")


# -- event state (CONTROL 32-34) ----------------------------------------------------


class StateSnapshot(Message, frozen=True):
    """Server: the event-wide state, after AuthOk and whenever it changes.

    The roster follows in RosterUpdate chunks, so this stays small whatever
    the audience.
    """

    event: Identifier
    title: Title
    mode: SpeakingMode
    attendance: U32
    streams: Annotated[tuple[StreamInfo, ...], Meta(max_length=MAX_STREAMS)] = ()

    def check(self) -> None:
        ids = [stream.stream_id for stream in self.streams]
        if len(set(ids)) != len(ids):
            raise ValueError("a stream id appears twice")
        for stream in self.streams:
            stream.check()


class RosterUpdate(Message, frozen=True):
    """Server: members who joined or changed, and names who left."""

    changed: Annotated[tuple[Member, ...], Meta(max_length=ROSTER_CHUNK)] = ()
    left: Annotated[tuple[Name, ...], Meta(max_length=ROSTER_CHUNK)] = ()

    def check(self) -> None:
        names = [member.name for member in self.changed] + list(self.left)
        if len(set(names)) != len(names):
            raise ValueError("a name appears twice in one roster update")


class RosterView(Message, frozen=True):
    """Server: forget the roster you hold; the RosterUpdates from here on list ``full``:
    every member, else the stage (moderators, raised hands, the floor, stream owners) and you.

    A server shows a participant only the stage when the event has more members
    than its roster limit (``[live] roster_limit``): a town hall of thousands
    would otherwise send every arrival to everyone. Sent at join when the stage
    is shown, and to every participant when the event grows past the limit or
    shrinks well below it. Moderators always get every member.
    """

    full: bool
    members: U32  # in the event now


class AttendanceChanged(Message, frozen=True):
    """Server: the event now has ``members`` members; to participants shown the stage only
    (RosterView), at most about once a second."""

    members: U32


class UpstreamChanged(Message, frozen=True):
    """Server: whether this server reaches the main server now (its link Up is open).

    Sent to a participant when its server's link Up breaks (``reachable``
    False) and when it is synced again (True), and after AuthOk when the link
    is down at that moment. While it is down, chat waits on this server and
    floor requests are refused; the event on this server goes on.
    """

    reachable: bool


# -- data channel (DATA 1-2) ----------------------------------------------------------


def _check_chat_text(text: str) -> None:
    if len(text.encode("utf-8")) > CHAT_TEXT_MAX_BYTES:
        raise ValueError(f"chat text over {CHAT_TEXT_MAX_BYTES} bytes of UTF-8")


class SendChat(Message, frozen=True):
    """Participant: post this; ``to`` None is everyone. ``seq`` is the sender's count."""

    text: ChatText
    to: Name | None = None
    seq: U32 = 0

    def check(self) -> None:
        _check_chat_text(self.text)


class ChatPosted(Message, frozen=True):
    """Server: a chat message, with the sender the server authenticated."""

    sender: Name
    text: ChatText
    to: Name | None = None
    seq: U32 = 0  # the sender's SendChat.seq: (sender, seq) names one message
    sender_display_name: DisplayName = ""  # what to show for the sender; "": its name

    @property
    def shown_sender(self) -> str:
        return self.sender_display_name or self.sender

    def check(self) -> None:
        _check_chat_text(self.text)


# -- server links Up: child to parent (CONTROL 40-43) ----------------------------------


class MemberJoined(Message, frozen=True):
    """A member authenticated on ``server`` at ``joined_at``; the newest join of a name wins."""

    name: Name
    credential_id: CredentialId
    role: MemberRole  # the ticket's role
    server: Name
    joined_at: Annotated[float, Meta(ge=0)]  # Unix seconds
    display_name: DisplayName = ""  # from the credential; "" (older peers): the name


class MemberLeft(Message, frozen=True):
    name: Name


class LinkRequest(Message, frozen=True):
    """Member ``name`` gave this command: a forwarded CONTROL message, its type byte and payload.

    Decoding checks the command as a participant connection would: it must be
    one of ``FORWARDED_COMMANDS``, with a valid payload.
    """

    name: Name
    command_type: Annotated[int, Meta(ge=0, le=255)]
    payload: Annotated[bytes, Meta(max_length=8192)]  # a CreatePoll at its largest fits

    @classmethod
    def of(cls, name: str, command: Message) -> LinkRequest:
        if type(command) not in FORWARDED_COMMANDS:
            raise LocalProtocolError(f"{type(command).__name__} is not forwarded Up")
        return cls(
            name=name,
            command_type=_ADDRESSES[type(command)][1],
            payload=_ENCODER.encode(command),
        )

    def command(self) -> Message:
        """The command, decoded and checked."""
        kind = MESSAGE_TYPES.get((Channel.CONTROL, self.command_type))
        if kind is None or kind not in FORWARDED_COMMANDS:
            raise RemoteProtocolError(
                f"request of type {self.command_type} is not a forwarded command"
            )
        return decode_message(kind, self.payload)

    def check(self) -> None:
        try:
            self.command()
        except RemoteProtocolError as exc:
            raise ValueError(str(exc)) from None


class Resync(Message, frozen=True):
    """Send me the state, and the chat after ``last_seq`` (0: none seen)."""

    last_seq: U64


# -- server links Down: parent to child (CONTROL 48-54) ---------------------------------


class ChatMark(Message, frozen=True):
    """The next ChatPosted on this link is entry ``seq`` of the main server's chat log."""

    seq: Annotated[int, Meta(ge=1)]


class Synced(Message, frozen=True):
    """The answer to Resync is complete: live traffic follows."""


class RosterReset(Message, frozen=True):
    """The whole roster follows, in RosterUpdates, up to RosterDone; forget the old one."""


class RosterDone(Message, frozen=True):
    """The roster announced by RosterReset is complete."""


class Evict(Message, frozen=True):
    """Close member ``name``'s connection, saying ``reason``."""

    name: Name
    reason: ByeReason
    message: Reason = ""


class Refused(Message, frozen=True):
    """Tell member ``name`` that a request was refused (an ``Error``)."""

    name: Name
    code: ErrorCode
    message: Reason = ""


class Banned(Message, frozen=True):
    """These credentials were removed from the event: refuse them everywhere."""

    credential_ids: Annotated[tuple[CredentialId, ...], Meta(min_length=1, max_length=BANNED_CHUNK)]


# -- polls and questions (CONTROL 64-75) --------------------------------------------------


def _check_unique(values: tuple[object, ...], what: str) -> None:
    if len(set(values)) != len(values):
        raise ValueError(f"{what} appears twice")


class Poll(Record, frozen=True):
    """A poll as one recipient may see it: ``counts`` None when its results are not
    shown to that recipient (docs/live.md, "Polls and questions")."""

    poll_id: U32
    question: PollText
    options: Annotated[tuple[PollOption, ...], Meta(min_length=2, max_length=MAX_POLL_OPTIONS)]
    multiple: bool  # several choices per vote
    state: PollState
    shared: bool  # the moderators show the results to everyone
    counts: Annotated[tuple[U32, ...], Meta(max_length=MAX_POLL_OPTIONS)] | None = None
    voters: U32 | None = None  # how many voted; None with counts

    def check(self) -> None:
        _check_unique(self.options, "an option")
        if (self.counts is None) != (self.voters is None):
            raise ValueError("counts and voters go together")
        if self.counts is not None and len(self.counts) != len(self.options):
            raise ValueError("one count per option")


class Question(Record, frozen=True):
    """A Q&A question; ``asker`` None when it was asked anonymously and you are no moderator."""

    question_id: U32
    text: QuestionText
    asker: Name | None
    anonymous: bool
    votes: U32
    state: QuestionState
    answer: AnswerText = ""


class CreatePoll(Message, frozen=True):
    """Moderator: write a poll (a draft, until OpenPoll)."""

    question: PollText
    options: Annotated[tuple[PollOption, ...], Meta(min_length=2, max_length=MAX_POLL_OPTIONS)]
    multiple: bool = False
    shared: bool = False

    def check(self) -> None:
        _check_unique(self.options, "an option")


class OpenPoll(Message, frozen=True):
    """Moderator: start taking votes."""

    poll_id: U32


class ClosePoll(Message, frozen=True):
    """Moderator: stop taking votes; the results stand."""

    poll_id: U32


class SharePollResults(Message, frozen=True):
    """Moderator: show the results to everyone (``shared``), or to moderators only."""

    poll_id: U32
    shared: bool = True


class Vote(Message, frozen=True):
    """Participant: my choices (option indices from 0), once per poll."""

    poll_id: U32
    choices: Annotated[tuple[Choice, ...], Meta(min_length=1, max_length=MAX_POLL_OPTIONS)]

    def check(self) -> None:
        _check_unique(self.choices, "a choice")


class PollUpdated(Message, frozen=True):
    """Server: a poll was written, opened, closed, shared, or its results moved."""

    poll: Poll

    def check(self) -> None:
        self.poll.check()


class AskQuestion(Message, frozen=True):
    """Participant: ask this; ``anonymous`` hides my name from all but moderators."""

    text: QuestionText
    anonymous: bool = False


class UpvoteQuestion(Message, frozen=True):
    """Participant: count me for someone else's question, once."""

    question_id: U32


class SettleQuestion(Message, frozen=True):
    """Moderator: answer a question in writing, mark it answered live, or dismiss it."""

    question_id: U32
    state: QuestionState
    answer: AnswerText = ""

    def check(self) -> None:
        if self.state is QuestionState.OPEN:
            raise ValueError("a question is settled as answered, answered-live or dismissed")
        if (self.state is QuestionState.ANSWERED) != bool(self.answer.strip()):
            raise ValueError("a written answer goes with state answered, and only with it")


class QuestionUpdated(Message, frozen=True):
    """Server: a question was asked, upvoted or settled."""

    question: Question


MESSAGE_TYPES: Final[Mapping[tuple[Channel, int], type[Message]]] = MappingProxyType(
    {
        (Channel.CONTROL, 1): Hello,
        (Channel.CONTROL, 2): Welcome,
        (Channel.CONTROL, 3): Auth,
        (Channel.CONTROL, 4): AuthOk,
        (Channel.CONTROL, 5): AuthFailed,
        (Channel.CONTROL, 6): Error,
        (Channel.CONTROL, 7): Ping,
        (Channel.CONTROL, 8): Pong,
        (Channel.CONTROL, 9): Bye,
        (Channel.CONTROL, 16): RaiseHand,
        (Channel.CONTROL, 17): LowerHand,
        (Channel.CONTROL, 18): GiveFloor,
        (Channel.CONTROL, 19): TakeFloor,
        (Channel.CONTROL, 20): Mute,
        (Channel.CONTROL, 21): Remove,
        (Channel.CONTROL, 22): SetSpeakingMode,
        (Channel.CONTROL, 23): EndEvent,
        (Channel.CONTROL, 24): OpenStream,
        (Channel.CONTROL, 25): CloseStream,
        (Channel.CONTROL, 26): StreamOpened,
        (Channel.CONTROL, 27): StreamClosed,
        (Channel.CONTROL, 28): RequestKeyFrame,
        (Channel.CONTROL, 29): MediaDropped,
        (Channel.CONTROL, 32): StateSnapshot,
        (Channel.CONTROL, 33): RosterUpdate,
        (Channel.CONTROL, 34): UpstreamChanged,
        (Channel.CONTROL, 35): RosterView,
        (Channel.CONTROL, 36): AttendanceChanged,
        (Channel.CONTROL, 40): MemberJoined,
        (Channel.CONTROL, 41): MemberLeft,
        (Channel.CONTROL, 42): LinkRequest,
        (Channel.CONTROL, 43): Resync,
        (Channel.CONTROL, 48): ChatMark,
        (Channel.CONTROL, 49): Synced,
        (Channel.CONTROL, 50): RosterReset,
        (Channel.CONTROL, 51): RosterDone,
        (Channel.CONTROL, 52): Evict,
        (Channel.CONTROL, 53): Refused,
        (Channel.CONTROL, 54): Banned,
        (Channel.CONTROL, 64): CreatePoll,
        (Channel.CONTROL, 65): OpenPoll,
        (Channel.CONTROL, 66): ClosePoll,
        (Channel.CONTROL, 67): SharePollResults,
        (Channel.CONTROL, 68): Vote,
        (Channel.CONTROL, 69): PollUpdated,
        (Channel.CONTROL, 72): AskQuestion,
        (Channel.CONTROL, 73): UpvoteQuestion,
        (Channel.CONTROL, 74): SettleQuestion,
        (Channel.CONTROL, 75): QuestionUpdated,
        (Channel.CONTROL, 56): SetRecording,
        (Channel.CONTROL, 57): RecordingChanged,
        (Channel.DATA, 1): SendChat,
        (Channel.DATA, 2): ChatPosted,
    }
)
FORWARDED_COMMANDS: Final[frozenset[type[Message]]] = frozenset(
    {
        RaiseHand,
        LowerHand,
        GiveFloor,
        TakeFloor,
        Mute,
        Remove,
        SetSpeakingMode,
        EndEvent,
        OpenStream,
        CloseStream,
        *(CreatePoll, OpenPoll, ClosePoll, SharePollResults, Vote),
        *(AskQuestion, UpvoteQuestion, SettleQuestion),
        SetRecording,
    }
)
"""The participant commands a child server forwards Up in a ``LinkRequest``."""
_ADDRESSES: Final[Mapping[type[Message], tuple[Channel, int]]] = MappingProxyType(
    {cls: address for address, cls in MESSAGE_TYPES.items()}
)
_DECODERS: Final[Mapping[type[Message], msgspec.msgpack.Decoder[Any]]] = MappingProxyType(
    {cls: msgspec.msgpack.Decoder(cls) for cls in MESSAGE_TYPES.values()}
)
_ENCODER: Final = msgspec.msgpack.Encoder()


def message_class(channel: Channel, type_: int) -> type[Message] | None:
    """The message a CONTROL or DATA frame header announces, None if unknown."""
    if channel.is_media:
        return None
    return MESSAGE_TYPES.get((channel, type_))


def address_of(message_type: type[Message]) -> tuple[Channel, int]:
    """The channel and type byte that carry this message."""
    return _ADDRESSES[message_type]


def decode_message(message_type: type[Message], payload: bytes) -> Message:
    """Decode and check one payload; RemoteProtocolError says what was wrong."""
    try:
        message: Message = _DECODERS[message_type].decode(payload)
        message.check()
    except (msgspec.MsgspecError, ValueError) as exc:
        # ValueError: some msgspec releases report invalid UTF-8 as UnicodeDecodeError.
        field = _field_at_fault(message_type, exc)
        where = f"{message_type.__name__}.{field}" if field else message_type.__name__
        raise RemoteProtocolError(f"bad {where}: {exc}", field=field) from None
    return message


# msgspec ends a validation error with the path it failed at: "- at `$[2]`" or
# "- at `$[4][0][2]`"; the first index is the message's field.
_ERROR_PATH = re.compile(r"at `\$\[(\d+)\]")


def _field_at_fault(message_type: type[Message], exc: Exception) -> str | None:
    """The name of the top-level field a decoding error points at, if it points at one."""
    found = _ERROR_PATH.search(str(exc))
    if found is None:
        return None
    names = message_type.__struct_fields__
    index = int(found.group(1))
    return names[index] if index < len(names) else None


@dataclass(frozen=True, slots=True)
class EncodedMessage:
    """A message and its frame bytes: encode once, send to many connections."""

    message: Message
    data: bytes


def encode_message(message: Message) -> EncodedMessage:
    """Encode a message into a whole frame, checked as the peer will check it.

    Raises LocalProtocolError for anything the peer would refuse: the payload
    is decoded again with the peer's own rules before it may leave.
    """
    message_type = type(message)
    address = _ADDRESSES.get(message_type)
    if address is None:
        raise LocalProtocolError(f"{message_type.__name__} is not a wire message")
    try:
        payload = _ENCODER.encode(message)
    except (msgspec.MsgspecError, ValueError, TypeError, OverflowError) as exc:
        raise LocalProtocolError(f"cannot encode {message_type.__name__}: {exc}") from None
    try:
        decode_message(message_type, payload)
    except RemoteProtocolError as exc:
        raise LocalProtocolError(str(exc)) from None
    channel, type_ = address
    return EncodedMessage(message, pack_frame(channel, type_, payload))
