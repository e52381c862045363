"""Every control and data message: round trip, checks on the way in and on the way out."""

from __future__ import annotations

import msgspec
import pytest

from tests.wire.test_link_message_codec import DOWN, UP
from tests.wire.test_poll_message_codec import POLLS
from townhall.wire import (
    MAX_PAYLOAD,
    AttendanceChanged,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Bye,
    ByeReason,
    ChatPosted,
    CloseStream,
    Codec,
    EndEvent,
    Error,
    ErrorCode,
    GiveFloor,
    Hello,
    Load,
    LocalProtocolError,
    LowerHand,
    MediaDropped,
    Member,
    Message,
    Mute,
    OpenStream,
    Ping,
    Pong,
    RaiseHand,
    RecordingChanged,
    RecordingState,
    RemoteProtocolError,
    Remove,
    RequestKeyFrame,
    Role,
    RosterUpdate,
    RosterView,
    SendChat,
    SetRecording,
    SetSpeakingMode,
    SpeakingMode,
    StateSnapshot,
    StreamClosed,
    StreamDrops,
    StreamInfo,
    StreamKind,
    StreamOpened,
    TakeFloor,
    UpstreamChanged,
    Welcome,
    encode_message,
)
from townhall.wire.frames import HEADER_SIZE, parse_header
from townhall.wire.messages import (
    DISPLAY_NAME_MAX,
    MESSAGE_TYPES,
    ROSTER_CHUNK,
    address_of,
    decode_message,
)

SAMPLES: list[Message] = [
    Hello(role=Role.PARTICIPANT, version=1, client="townhall-python/0.1"),
    Hello(role=Role.SERVER_LINK, version=3, client="live/0.1"),
    Hello(role=Role.CONTROLLER_LINK, version=1, client="live/0.1"),
    Welcome(version=1, server="main"),
    Auth(ticket=bytes(range(256)) * 4),
    AuthOk(name="Ana María", event="ev-2024.07:x", moderator=True),
    AuthOk(name="live-2"),
    AuthFailed(reason=AuthFailure.IN_USE, message="this ticket is in use on another device"),
    AuthFailed(reason=AuthFailure.BAD_TICKET),
    Error(code=ErrorCode.UNKNOWN_MEMBER, message="no member named bob"),
    Ping(nonce=0),
    Ping(nonce=2**64 - 1),
    Pong(nonce=7),
    Pong(nonce=7, load=Load(participants=2**32 - 1, capacity=0)),
    Bye(reason=ByeReason.REMOVED, message="removed by the moderator"),
    RaiseHand(),
    LowerHand(),
    LowerHand(name="bob"),
    GiveFloor(name="bob"),
    TakeFloor(),
    Mute(name="bob"),
    Mute(name="bob", muted=False),
    Remove(name="troll"),
    SetSpeakingMode(mode=SpeakingMode.LECTURE),
    EndEvent(),
    SetRecording(state=RecordingState.PAUSED),
    RecordingChanged(state=RecordingState.RECORDING),
    OpenStream(codec=Codec.VP8),
    OpenStream(codec=Codec.H264, kind=StreamKind.SCREEN),
    CloseStream(stream_id=9),
    StreamOpened(stream=StreamInfo(stream_id=9, owner="alice", codec=Codec.OPUS)),
    StreamOpened(
        stream=StreamInfo(stream_id=9, owner="alice", codec=Codec.VP8, kind=StreamKind.CAMERA)
    ),
    StreamClosed(stream_id=9),
    RequestKeyFrame(stream_id=2**32 - 1),
    MediaDropped(audio_frames=0, video_frames=1),
    MediaDropped(
        audio_frames=2**32 - 1,
        video_frames=7,
        streams=(StreamDrops(stream_id=1, frames=40), StreamDrops(stream_id=2, frames=7)),
    ),
    StateSnapshot(
        event="ev-1",
        title="Quarterly review — Q3",
        mode=SpeakingMode.MODERATED,
        attendance=1234,
        streams=(
            StreamInfo(stream_id=1, owner="alice", codec=Codec.OPUS),
            StreamInfo(stream_id=2, owner="alice", codec=Codec.VP8),
        ),
    ),
    RosterUpdate(),
    RosterUpdate(
        changed=(Member(name="alice", moderator=True, floor=True), Member(name="李雷", muted=True)),
        left=("bob",),
    ),
    UpstreamChanged(reachable=False),
    UpstreamChanged(reachable=True),
    RosterView(full=False, members=10_000),
    RosterView(full=True, members=0),
    AttendanceChanged(members=2**32 - 1),
    SendChat(text="hi 👋\nsecond line", seq=1),
    SendChat(text="just to you", to="bob", seq=2**32 - 1),
    ChatPosted(sender="alice", text="hi 👋", seq=1),
    ChatPosted(sender="alice", text="psst", to="bob"),
    *UP,
    *DOWN,
    *POLLS,
]


def test_the_samples_cover_every_message_type() -> None:
    assert {type(message) for message in SAMPLES} == set(MESSAGE_TYPES.values())


@pytest.mark.parametrize("message", SAMPLES, ids=lambda message: type(message).__name__)
def test_every_message_survives_a_round_trip_in_its_own_frame(message: Message) -> None:
    data = encode_message(message).data
    header = parse_header(data)
    assert (header.channel, header.type) == address_of(type(message))
    assert header.length == len(data) - HEADER_SIZE
    assert decode_message(type(message), data[HEADER_SIZE:]) == message


def test_messages_are_frozen() -> None:
    message = GiveFloor(name="bob")
    with pytest.raises(AttributeError):
        message.name = "mallory"  # type: ignore[misc]


def test_every_type_byte_is_unique_and_nonzero_within_its_channel() -> None:
    assert all(type_ > 0 for _, type_ in MESSAGE_TYPES)
    assert len(set(MESSAGE_TYPES.values())) == len(MESSAGE_TYPES)


def raw(*fields: object) -> bytes:
    """A payload as a peer could write it, without our checks."""
    return msgspec.msgpack.encode(list(fields))


# What the protocol promises about a payload that breaks a rule: it is refused
# as the peer's fault, naming the field at fault where one field is. The text a
# decoder library writes is not part of the promise, so only our own rules
# (Message.check) are matched by their words.
@pytest.mark.parametrize(
    ("message_type", "payload", "field"),
    [
        (Hello, raw("guest", 1, "x"), "role"),
        (Hello, raw("participant", 0, "x"), "version"),
        (Hello, raw("participant", 1.0, "x"), "version"),
        (Hello, raw("participant", True, "x"), "version"),
        (Hello, raw("participant", 1), None),  # a field missing
        (Hello, raw("participant", 1, "x", "extra"), None),
        (Hello, raw("participant", 1, ""), "client"),
        (Hello, raw("participant", 1, "x" * 65), "client"),
        (Hello, msgspec.msgpack.encode({"role": "participant"}), None),
        (Hello, raw("participant", 1, "x") + b"\x00", None),  # trailing bytes
        (Hello, raw("participant", 1, "x")[:-1], None),  # truncated
        (Hello, b"\x93\xabparticipant\x01\xa2\xc3\x28", None),  # invalid UTF-8
        (Auth, raw(b""), "ticket"),
        (Auth, raw(b"x" * 8193), "ticket"),
        (Auth, raw("a string, not bytes"), "ticket"),
        (AuthOk, raw("alice\n", None, False), "name"),
        (AuthOk, raw("\u202eecila", None, False), "name"),
        (AuthOk, raw("alice", "ev 1", False), "event"),
        (Ping, raw(-1), "nonce"),
        (Pong, raw(1, [1]), "load"),
        (Bye, raw("normal", "bell\x07"), "message"),
        (Bye, raw("normal", "x" * 1025), "message"),
        (RosterUpdate, raw([["a"]] * (ROSTER_CHUNK + 1), []), "changed"),
        (RosterUpdate, b"\x92\xdd\xff\xff\xff\xff\x90", "changed"),
        (StateSnapshot, raw("e", "t", "open", 0, [[1, "a", "av1"]]), "streams"),
        (OpenStream, raw("vp8", "window"), "kind"),
        (SendChat, raw("", None, 0), "text"),
        (SendChat, raw("null\x00byte", None, 0), "text"),
        (ChatPosted, raw("alice", "hi", None, 2**32), "seq"),
        (MediaDropped, raw(-1, 1, []), "audio_frames"),
        (MediaDropped, raw(1, 2**32, []), "video_frames"),
        (MediaDropped, raw(1.0, 0, []), "audio_frames"),
        (MediaDropped, raw(65, 0, [[i, 1] for i in range(65)]), "streams"),
        (MediaDropped, raw(1, 0, [[1, 0]]), "streams"),  # a listed stream dropped nothing
        (MediaDropped, raw(1, 0, [[-1, 1]]), "streams"),
        (MediaDropped, raw(1, 0, [[1, 1, 1]]), "streams"),
        (MediaDropped, raw(1, 0, {}), "streams"),
    ],
)
def test_a_payload_that_breaks_a_rule_is_refused_as_the_peers_fault(
    message_type: type[Message], payload: bytes, field: str | None
) -> None:
    with pytest.raises(RemoteProtocolError, match=f"^bad {message_type.__name__}") as refused:
        decode_message(message_type, payload)
    assert refused.value.field == field


@pytest.mark.parametrize(
    ("message_type", "payload", "rule"),
    [
        (RosterUpdate, raw([["a"], ["a"]], []), "a name appears twice"),
        (RosterUpdate, raw([["a"]], ["a"]), "a name appears twice"),
        (StateSnapshot, raw("e", "t", "open", 0, [[1, "a", "opus"], [1, "b", "vp8"]]), "twice"),
        (SendChat, raw("é" * 2049, None, 0), "over 4096 bytes"),
        (StateSnapshot, raw("e", "t", "open", 0, [[1, "a", "opus", "screen"]]), "cannot carry"),
        (StreamOpened, raw([1, "a", "vp8", "microphone"]), "cannot carry"),
        (OpenStream, raw("h264", "microphone"), "cannot carry"),
        (MediaDropped, raw(0, 0, []), "at least one frame"),
        (MediaDropped, raw(2, 0, [[1, 1], [1, 1]]), "twice"),
        (MediaDropped, raw(2, 1, [[1, 2], [2, 2]]), "more than the totals"),
    ],
)
def test_a_payload_that_breaks_a_rule_across_fields_says_which_rule(
    message_type: type[Message], payload: bytes, rule: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=rule):
        decode_message(message_type, payload)


def test_the_largest_u64_is_a_valid_nonce() -> None:
    assert decode_message(Ping, b"\x91\xcf" + b"\xff" * 8) == Ping(nonce=2**64 - 1)


@pytest.mark.parametrize(
    "message",
    [
        Hello(role=Role.PARTICIPANT, version=1, client="tab\there"),
        Hello(role=Role.PARTICIPANT, version="1", client="x"),  # type: ignore[arg-type]
        GiveFloor(name="x" * 65),
        Ping(nonce=2**64),
        Ping(nonce=-1),
        SendChat(text="🙂" * 1025),
        SendChat(text="lone \ud800 surrogate"),
        RosterUpdate(changed=(Member(name="a"),), left=("a",)),
        UpstreamChanged(reachable="yes"),  # type: ignore[arg-type]
        RosterView(full=False, members=-1),
        AttendanceChanged(members=2**32),
        MediaDropped(audio_frames=2**32, video_frames=0),
        MediaDropped(audio_frames=0, video_frames=0),
        MediaDropped(
            audio_frames=100,
            video_frames=0,
            streams=tuple(StreamDrops(stream_id=i, frames=1) for i in range(65)),
        ),
    ],
    ids=repr,
)
def test_a_message_the_peer_would_refuse_is_not_encoded(message: Message) -> None:
    with pytest.raises(LocalProtocolError):
        encode_message(message)


def test_chat_text_is_bounded_in_bytes_of_utf8() -> None:
    encode_message(SendChat(text="a" * 4096))
    encode_message(SendChat(text="🙂" * 1024))  # 4 bytes each
    with pytest.raises(LocalProtocolError, match="4096 bytes"):
        encode_message(SendChat(text="🙂" * 1024 + "a"))


def test_the_largest_roster_update_and_snapshot_fit_in_a_control_frame() -> None:
    widest = "\U0001f642" * 64  # 64 characters of 4 bytes each
    roster = RosterUpdate(
        changed=tuple(
            Member(
                name=widest[:-3] + f"{i:03}",
                moderator=True,
                hand_raised=True,
                floor=True,
                muted=True,
                display_name="\U0001f642" * DISPLAY_NAME_MAX,
            )
            for i in range(ROSTER_CHUNK)
        ),
        left=tuple(widest[:-4] + f"{i:03}x" for i in range(ROSTER_CHUNK)),
    )
    snapshot = StateSnapshot(
        event="e" * 64,
        title=widest * 4,
        mode=SpeakingMode.MODERATED,
        attendance=2**32 - 1,
        streams=tuple(
            StreamInfo(stream_id=2**32 - 1 - i, owner=widest, codec=Codec.OPUS) for i in range(64)
        ),
    )
    notice = MediaDropped(
        audio_frames=2**32 - 1,
        video_frames=2**32 - 1,
        streams=tuple(StreamDrops(stream_id=2**32 - 1 - i, frames=2**26) for i in range(64)),
    )
    for message in (roster, snapshot, notice):
        payload_size = len(encode_message(message).data) - HEADER_SIZE
        assert payload_size <= MAX_PAYLOAD[address_of(type(message))[0]]


def test_the_longest_chat_fits_in_a_data_frame() -> None:
    chat = ChatPosted(sender="\U0001f642" * 64, text="\U0001f642" * 1024, to="\U0001f642" * 64)
    assert len(encode_message(chat).data) < MAX_PAYLOAD[address_of(ChatPosted)[0]]


def test_a_bye_for_an_error_carries_its_text_made_safe_to_send() -> None:
    bye = Bye.for_error(RemoteProtocolError("bad name 'evil\x1b[2J'" + "!" * 2000))
    assert bye.reason is ByeReason.PROTOCOL_ERROR
    assert bye.message.startswith("bad name 'evil?[2J'")
    assert len(bye.message) == 1024
    encode_message(bye)


def test_encoding_something_that_is_not_a_wire_message_is_our_mistake() -> None:
    with pytest.raises(LocalProtocolError, match="not a wire message"):
        encode_message(Load(participants=1, capacity=2))  # type: ignore[arg-type]
