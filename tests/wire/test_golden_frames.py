"""Canonical frames kept as .bin files, so the wire format cannot drift unnoticed.

Each file was written once by running this module as a script
(``.venv/bin/python tests/wire/test_golden_frames.py``). A change that makes
these tests fail changes the protocol: bump the version, update
docs/protocol.md, and only then write the files again.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.wire.wire_support import decode_frame
from townhall.wire import (
    AskQuestion,
    AttendanceChanged,
    AuthFailure,
    AuthOk,
    Bye,
    ByeReason,
    Channel,
    ChatPosted,
    Codec,
    CreatePoll,
    EndEvent,
    Hello,
    Load,
    MediaDropped,
    MediaFrame,
    Member,
    MemberJoined,
    Message,
    OpenStream,
    Poll,
    PollState,
    PollUpdated,
    Pong,
    Question,
    QuestionState,
    QuestionUpdated,
    RequestKeyFrame,
    Role,
    RosterUpdate,
    RosterView,
    SendChat,
    SpeakingMode,
    StateSnapshot,
    StreamDrops,
    StreamInfo,
    StreamKind,
    StreamOpened,
    Vote,
    Welcome,
    encode_message,
)
from townhall.wire.messages import Auth, AuthFailed

GOLDEN = Path(__file__).parent / "golden"

FRAMES: dict[str, Message | MediaFrame] = {
    "hello": Hello(role=Role.PARTICIPANT, version=1, client="townhall-python/0.1"),
    "welcome": Welcome(version=1, server="main"),
    "auth": Auth(ticket=bytes.fromhex("8f2a0c6e5b71d4e3")),
    "auth_ok": AuthOk(name="Ana María", event="ev-42", moderator=True, display_name="Ana"),
    "auth_failed": AuthFailed(reason=AuthFailure.EXPIRED, message="expired"),
    "pong_with_load": Pong(nonce=1, load=Load(participants=120, capacity=500)),
    "state_snapshot": StateSnapshot(
        event="ev-42",
        title="All hands",
        mode=SpeakingMode.MODERATED,
        attendance=2,
        streams=(
            StreamInfo(
                stream_id=1, owner="Ana María", codec=Codec.OPUS, kind=StreamKind.MICROPHONE
            ),
        ),
    ),
    "roster_view": RosterView(full=False, members=10_000),
    "attendance_changed": AttendanceChanged(members=10_001),
    "roster_update": RosterUpdate(
        changed=(
            Member(name="Ana María", moderator=True, floor=True, display_name="Ana"),
            Member(name="Bo"),
        ),
        left=("Cy",),
    ),
    "send_chat": SendChat(text="Hi 👋", seq=1),
    "chat_posted": ChatPosted(
        sender="Ana María", text="Hi 👋", to="Bo", seq=1, sender_display_name="Ana"
    ),
    "bye": Bye(reason=ByeReason.NORMAL),
    "open_stream_camera": OpenStream(codec=Codec.H264, kind=StreamKind.CAMERA),
    "request_key_frame": RequestKeyFrame(stream_id=2),
    "media_dropped": MediaDropped(
        audio_frames=12,
        video_frames=30,
        streams=(StreamDrops(stream_id=2, frames=30), StreamDrops(stream_id=1, frames=12)),
    ),
    "end_event": EndEvent(),
    "stream_opened_screen": StreamOpened(
        stream=StreamInfo(stream_id=3, owner="Bo", codec=Codec.VP8, kind=StreamKind.SCREEN)
    ),
    "member_joined": MemberJoined(
        name="Ana María",
        credential_id="cred-0001",
        role="moderator",
        server="child-a",
        joined_at=1_700_000_000.5,
        display_name="Ana",
    ),
    "create_poll": CreatePoll(question="Lunch?", options=("pizza", "soup"), multiple=True),
    "vote": Vote(poll_id=1, choices=(0, 1)),
    "poll_updated": PollUpdated(
        poll=Poll(
            poll_id=1,
            question="Lunch?",
            options=("pizza", "soup"),
            multiple=True,
            state=PollState.OPEN,
            shared=False,
            counts=(3, 1),
            voters=3,
        )
    ),
    "ask_question": AskQuestion(text="Slides?", anonymous=True),
    "question_updated": QuestionUpdated(
        question=Question(
            question_id=2,
            text="Slides?",
            asker=None,
            anonymous=True,
            votes=4,
            state=QuestionState.ANSWERED,
            answer="Yes",
        )
    ),
    "audio": MediaFrame.build(
        Channel.AUDIO,
        stream_id=1,
        seq=0xFFFFFFFF,
        timestamp_us=1_700_000_000_000_000,
        payload=b"\xfc\xff\xfe",
    ),
    "video_keyframe": MediaFrame.build(
        Channel.VIDEO,
        stream_id=2,
        seq=0,
        timestamp_us=1_700_000_000_020_000,
        payload=bytes.fromhex("9d012a"),
        keyframe=True,
    ),
}


def encoded(item: Message | MediaFrame) -> bytes:
    return item.data if isinstance(item, MediaFrame) else encode_message(item).data


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_encoding_gives_the_golden_bytes(name: str) -> None:
    assert encoded(FRAMES[name]) == (GOLDEN / f"{name}.bin").read_bytes()


@pytest.mark.parametrize("name", sorted(FRAMES))
def test_the_golden_bytes_decode_to_the_message(name: str) -> None:
    assert decode_frame((GOLDEN / f"{name}.bin").read_bytes()) == FRAMES[name]


def test_every_golden_file_is_checked() -> None:
    assert {path.stem for path in GOLDEN.glob("*.bin")} == set(FRAMES)


if __name__ == "__main__":
    GOLDEN.mkdir(exist_ok=True)
    for name, item in FRAMES.items():
        (GOLDEN / f"{name}.bin").write_bytes(encoded(item))
        print(f"{name}.bin  {encoded(item).hex(' ')}")
