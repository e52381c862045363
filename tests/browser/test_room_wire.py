"""wire.js in real Chromium writes and reads the very bytes of the Python golden frames."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.browser.browser_support import StaticServer
from tests.browser.conftest import OpenBrowser

GOLDEN = Path(__file__).resolve().parents[1] / "wire" / "golden"

# The messages of tests/wire/test_golden_frames.py as room.js builds them.
MESSAGES = {
    "hello": {
        "type": "Hello",
        "role": "participant",
        "version": 1,
        "client": "townhall-python/0.1",
    },
    "welcome": {"type": "Welcome", "version": 1, "server": "main"},
    "auth_ok": {
        "type": "AuthOk",
        "name": "Ana María",
        "event": "ev-42",
        "moderator": True,
        "display_name": "Ana",
    },
    "auth_failed": {"type": "AuthFailed", "reason": "expired", "message": "expired"},
    "pong_with_load": {"type": "Pong", "nonce": 1, "load": {"participants": 120, "capacity": 500}},
    "send_chat": {"type": "SendChat", "text": "Hi 👋", "seq": 1},
    "chat_posted": {
        "type": "ChatPosted",
        "sender": "Ana María",
        "text": "Hi 👋",
        "to": "Bo",
        "seq": 1,
        "sender_display_name": "Ana",
    },
    "bye": {"type": "Bye", "reason": "normal"},
    "request_key_frame": {"type": "RequestKeyFrame", "stream_id": 2},
    "media_dropped": {
        "type": "MediaDropped",
        "audio_frames": 12,
        "video_frames": 30,
        "streams": [{"stream_id": 2, "frames": 30}, {"stream_id": 1, "frames": 12}],
    },
    "end_event": {"type": "EndEvent"},
    "open_stream_camera": {"type": "OpenStream", "codec": "h264", "kind": "camera"},
    "stream_opened_screen": {
        "type": "StreamOpened",
        "stream": {"stream_id": 3, "owner": "Bo", "codec": "vp8", "kind": "screen"},
    },
    "state_snapshot": {
        "type": "StateSnapshot",
        "event": "ev-42",
        "title": "All hands",
        "mode": "moderated",
        "attendance": 2,
        "streams": [{"stream_id": 1, "owner": "Ana María", "codec": "opus", "kind": "microphone"}],
    },
    "create_poll": {
        "type": "CreatePoll",
        "question": "Lunch?",
        "options": ["pizza", "soup"],
        "multiple": True,
    },
    "vote": {"type": "Vote", "poll_id": 1, "choices": [0, 1]},
    "poll_updated": {
        "type": "PollUpdated",
        "poll": {
            "poll_id": 1,
            "question": "Lunch?",
            "options": ["pizza", "soup"],
            "multiple": True,
            "state": "open",
            "shared": False,
            "counts": [3, 1],
            "voters": 3,
        },
    },
    "ask_question": {"type": "AskQuestion", "text": "Slides?", "anonymous": True},
    "question_updated": {
        "type": "QuestionUpdated",
        "question": {
            "question_id": 2,
            "text": "Slides?",
            "asker": None,
            "anonymous": True,
            "votes": 4,
            "state": "answered",
            "answer": "Yes",
        },
    },
    "roster_view": {"type": "RosterView", "full": False, "members": 10_000},
    "attendance_changed": {"type": "AttendanceChanged", "members": 10_001},
    "roster_update": {
        "type": "RosterUpdate",
        "changed": [
            {"name": "Ana María", "moderator": True, "floor": True, "display_name": "Ana"},
            {"name": "Bo"},
        ],
        "left": ["Cy"],
    },
}
MEDIA = {
    "audio": {
        "channel": 1,
        "streamId": 1,
        "seq": 0xFFFFFFFF,
        "timestampUs": 1_700_000_000_000_000,
        "data": [0xFC, 0xFF, 0xFE],
    },
    "video_keyframe": {
        "channel": 2,
        "streamId": 2,
        "seq": 0,
        "timestampUs": 1_700_000_000_020_000,
        "keyframe": True,
        "data": [0x9D, 0x01, 0x2A],
    },
}

ROUND_TRIP = """async ([message, media]) => {
  const wire = await import('/static/wire.js');
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  if (media) {
    const frame = wire.encodeMedia(media.channel, {...media, data: Uint8Array.from(media.data)});
    const back = wire.decodeFrame(frame);
    return {hex: hex(frame), decoded: {...back, data: Array.from(back.data)}};
  }
  const frame = wire.encodeMessage(message);
  return {hex: hex(frame), decoded: wire.decodeFrame(frame)};
}"""


@pytest.fixture
def page(open_browser: OpenBrowser, static_server: StaticServer):  # type: ignore[no-untyped-def]
    page = open_browser().new_page()
    page.goto(static_server.url + "/pages/media.html")
    return page


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_js_encodes_each_message_to_the_golden_bytes_and_reads_them_back(page, name: str) -> None:  # type: ignore[no-untyped-def]
    result = page.evaluate(ROUND_TRIP, [MESSAGES[name], None])
    assert bytes.fromhex(result["hex"]) == (GOLDEN / f"{name}.bin").read_bytes()
    for field, value in MESSAGES[name].items():
        if field not in ("changed", "streams", "stream"):
            assert result["decoded"][field] == value


@pytest.mark.parametrize("name", sorted(MEDIA))
def test_js_media_frames_match_the_golden_bytes(page, name: str) -> None:  # type: ignore[no-untyped-def]
    result = page.evaluate(ROUND_TRIP, [None, MEDIA[name]])
    assert bytes.fromhex(result["hex"]) == (GOLDEN / f"{name}.bin").read_bytes()
    assert result["decoded"]["seq"] == MEDIA[name]["seq"]
    assert result["decoded"]["timestampUs"] == MEDIA[name]["timestampUs"]
    assert result["decoded"]["data"] == MEDIA[name]["data"]


def test_js_refuses_frames_the_protocol_does_not_allow(page) -> None:  # type: ignore[no-untyped-def]
    errors = page.evaluate(
        """async () => {
      const wire = await import('/static/wire.js');
      const bad = [
        [2, 0, 33, 0, 0, 0, 0, 1, 0x90],            // version 2
        [1, 9, 1, 0, 0, 0, 0, 1, 0x90],             // no channel 9
        [1, 0, 99, 0, 0, 0, 0, 1, 0x90],            // no CONTROL type 99
        [1, 0, 33, 0, 0, 0, 0, 5, 0x90],            // length says more than there is
        [1, 0, 33, 1, 0, 0, 0, 1, 0x90],            // keyframe flag on CONTROL
        [1, 0, 33, 0, 0, 0, 0, 2, 0x81, 0xa1],       // a map where an array belongs
        [1, 1, 0, 0, 0, 0, 0, 4, 0, 0, 0, 1],       // media without its header
      ];
      return bad.map((bytes) => {
        try { wire.decodeFrame(Uint8Array.from(bytes)); return 'accepted'; }
        catch (error) { return error.constructor.name; }
      });
    }"""
    )
    assert errors == ["ProtocolError"] * 7
