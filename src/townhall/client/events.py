"""What a ``Participant`` reports: typed events, past tense, each with its JSON form.

The session turns the server's wire messages into these (and adds its own:
joined, lost, rejoining, left), so a program, the ``townhall join --json``
output and the tests read one vocabulary that survives a rejoin on another
server. Floor and hands are derived from the roster (the wire carries them as
``Member`` flags). ``event_json`` gives every event as one JSON object whose
``type`` names it; media payloads are given as their size, not their bytes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from townhall.wire import (
    ByeReason,
    Codec,
    ErrorCode,
    Member,
    Poll,
    Question,
    RecordingState,
    SpeakingMode,
    StreamDrops,
    StreamInfo,
)

__all__ = [
    "AttendanceCounted",
    "ChatReceived",
    "ClientEvent",
    "ConnectionLost",
    "FloorChanged",
    "HandsChanged",
    "Joined",
    "KeyFrameRequested",
    "Left",
    "MainReachChanged",
    "MediaReceived",
    "MediaSkipped",
    "PollChanged",
    "QuestionChanged",
    "RecordingStateChanged",
    "Rejoining",
    "RequestRefused",
    "RosterChanged",
    "StateChanged",
    "StreamEnded",
    "StreamStarted",
    "event_json",
    "member_json",
]


@dataclass(frozen=True, slots=True)
class Joined:
    """Authenticated on ``server`` as ``name``; ``rejoin`` after a lost server."""

    server: str
    name: str
    event: str | None
    moderator: bool
    rejoin: bool = False
    display_name: str = ""  # what others are shown of us; "": the name


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The event-wide state (``StateSnapshot``)."""

    event: str
    title: str
    mode: SpeakingMode
    attendance: int
    streams: tuple[StreamInfo, ...]


@dataclass(frozen=True, slots=True)
class RosterChanged:
    changed: tuple[Member, ...]
    left: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AttendanceCounted:
    """How many members the event has; ``everyone_listed`` False: the roster holds only the
    stage (moderators, raised hands, the floor, stream owners) and us, as in a large event
    (``RosterView``, ``AttendanceChanged``)."""

    members: int
    everyone_listed: bool


@dataclass(frozen=True, slots=True)
class FloorChanged:
    holder: str | None  # None: nobody holds the floor


@dataclass(frozen=True, slots=True)
class HandsChanged:
    raised: tuple[str, ...]  # sorted by name: the wire does not give the queue's order


@dataclass(frozen=True, slots=True)
class ChatReceived:
    sender: str  # the sender's name: its identity (``to`` of a reply)
    text: str
    to: str | None
    seq: int
    sender_display_name: str = ""  # what to show for the sender; "": its name

    @property
    def shown_sender(self) -> str:
        return self.sender_display_name or self.sender


@dataclass(frozen=True, slots=True)
class StreamStarted:
    stream_id: int
    owner: str
    codec: Codec


@dataclass(frozen=True, slots=True)
class StreamEnded:
    stream_id: int


@dataclass(frozen=True, slots=True)
class MediaReceived:
    """One audio or video frame; ``owner`` and ``codec`` from its stream, when announced."""

    stream_id: int
    owner: str | None
    codec: Codec | None
    seq: int
    timestamp_us: int
    keyframe: bool
    payload: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class KeyFrameRequested:
    """A viewer of our VIDEO stream ``stream_id`` (the id ``open_stream`` gave) needs a
    key frame: encode the next frame of that stream as one."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class MediaSkipped:
    """Our server dropped media for us because our connection fell behind (wire
    ``MediaDropped``): frames since its previous notice, at most one a second. What
    arrives after is current again; a dropped VIDEO stream resumes at its next key
    frame, which the server already asked its owner for."""

    audio_frames: int
    video_frames: int
    streams: tuple[StreamDrops, ...]  # the streams that lost most, up to 64


@dataclass(frozen=True, slots=True)
class PollChanged:
    """A poll was written (moderators see drafts), opened, closed or shared, or its results
    moved; ``poll.counts`` is None while its results are not shown to us."""

    poll: Poll


@dataclass(frozen=True, slots=True)
class QuestionChanged:
    """A question was asked, upvoted or settled; ``question.asker`` is None when it was
    asked anonymously and we are no moderator."""

    question: Question


@dataclass(frozen=True, slots=True)
class RequestRefused:
    """The server refused one request (wire ``Error``); the connection stays."""

    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class ConnectionLost:
    """The server went away without ending our membership; a rejoin follows."""

    server: str
    reason: ByeReason
    message: str


@dataclass(frozen=True, slots=True)
class MainReachChanged:
    """Our server ``server`` lost (``reachable`` False) or got back its link toward the
    main server. While it is lost we stay connected and hear who is on our side of the
    break; our chat waits on the server and floor requests are refused."""

    server: str
    reachable: bool


@dataclass(frozen=True, slots=True)
class RecordingStateChanged:
    """The event is being recorded (``recording``), the recording is paused, or it is not
    recorded (``off``): show it to the user."""

    state: RecordingState


@dataclass(frozen=True, slots=True)
class Rejoining:
    attempt: int
    delay: float  # seconds before this attempt


@dataclass(frozen=True, slots=True)
class Left:
    """The end: the last event. ``reason`` is the Bye's (``removed``, ``event-ended``,
    ``normal`` when we left) or ``connection-lost`` / ``auth-failed`` when joining
    again failed."""

    reason: ByeReason
    message: str
    by_peer: bool


ClientEvent = (
    Joined
    | StateChanged
    | RosterChanged
    | AttendanceCounted
    | FloorChanged
    | HandsChanged
    | ChatReceived
    | StreamStarted
    | StreamEnded
    | MediaReceived
    | KeyFrameRequested
    | MediaSkipped
    | PollChanged
    | QuestionChanged
    | RequestRefused
    | ConnectionLost
    | MainReachChanged
    | RecordingStateChanged
    | Rejoining
    | Left
)


def member_json(member: Member) -> dict[str, Any]:
    return {
        "name": member.name,
        "display_name": member.shown,  # the display name, or the name when none was given
        "moderator": member.moderator,
        "hand_raised": member.hand_raised,
        "floor": member.floor,
        "muted": member.muted,
    }


def _stream_json(info: StreamInfo) -> dict[str, Any]:
    return {"stream_id": info.stream_id, "owner": info.owner, "codec": info.codec.value}


def event_json(event: ClientEvent) -> dict[str, Any]:
    """``event`` as a JSON-ready object: ``{"type": ..., fields...}``."""
    match event:
        case Joined():
            return {
                "type": "joined",
                "server": event.server,
                "name": event.name,
                "display_name": event.display_name or event.name,
                "event": event.event,
                "moderator": event.moderator,
                "rejoin": event.rejoin,
            }
        case StateChanged():
            return {
                "type": "state",
                "event": event.event,
                "title": event.title,
                "mode": event.mode.value,
                "attendance": event.attendance,
                "streams": [_stream_json(info) for info in event.streams],
            }
        case RosterChanged():
            return {
                "type": "roster",
                "changed": [member_json(member) for member in event.changed],
                "left": list(event.left),
            }
        case AttendanceCounted():
            listed = "everyone" if event.everyone_listed else "stage"
            return {"type": "attendance", "members": event.members, "roster": listed}
        case FloorChanged():
            return {"type": "floor", "holder": event.holder}
        case HandsChanged():
            return {"type": "hands", "raised": list(event.raised)}
        case ChatReceived():
            return {
                "type": "chat",
                "sender": event.sender,
                "display_name": event.shown_sender,
                "text": event.text,
                "to": event.to,
                "seq": event.seq,
            }
        case StreamStarted():
            return {
                "type": "stream-opened",
                "stream_id": event.stream_id,
                "owner": event.owner,
                "codec": event.codec.value,
            }
        case StreamEnded():
            return {"type": "stream-closed", "stream_id": event.stream_id}
        case MediaReceived():
            return {
                "type": "media",
                "stream_id": event.stream_id,
                "owner": event.owner,
                "codec": None if event.codec is None else event.codec.value,
                "seq": event.seq,
                "timestamp_us": event.timestamp_us,
                "keyframe": event.keyframe,
                "bytes": len(event.payload),
            }
        case KeyFrameRequested():
            return {"type": "key-frame-requested", "stream_id": event.stream_id}
        case MediaSkipped():
            return {
                "type": "media-dropped",
                "audio_frames": event.audio_frames,
                "video_frames": event.video_frames,
                "streams": [
                    {"stream_id": stream.stream_id, "frames": stream.frames}
                    for stream in event.streams
                ],
            }
        case PollChanged(poll=poll):
            return {
                "type": "poll",
                "poll_id": poll.poll_id,
                "question": poll.question,
                "options": list(poll.options),
                "multiple": poll.multiple,
                "state": poll.state.value,
                "shared": poll.shared,
                "counts": None if poll.counts is None else list(poll.counts),
                "voters": poll.voters,
            }
        case QuestionChanged(question=question):
            return {
                "type": "question",
                "question_id": question.question_id,
                "text": question.text,
                "asker": question.asker,
                "anonymous": question.anonymous,
                "votes": question.votes,
                "state": question.state.value,
                "answer": question.answer,
            }
        case RequestRefused():
            return {"type": "error", "code": event.code.value, "message": event.message}
        case ConnectionLost():
            return {
                "type": "connection-lost",
                "server": event.server,
                "reason": event.reason.value,
                "message": event.message,
            }
        case MainReachChanged():
            return {"type": "main-reach", "server": event.server, "reachable": event.reachable}
        case RecordingStateChanged():
            return {"type": "recording", "state": event.state.value}
        case Rejoining():
            return {"type": "rejoining", "attempt": event.attempt, "delay": round(event.delay, 3)}
        case Left():
            return {
                "type": "left",
                "reason": event.reason.value,
                "message": event.message,
                "by_peer": event.by_peer,
            }
