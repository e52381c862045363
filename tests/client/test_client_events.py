"""Every client event has a JSON form that names its type and round-trips through json."""

from __future__ import annotations

import json

from townhall.client.events import (
    ChatReceived,
    ClientEvent,
    ConnectionLost,
    FloorChanged,
    HandsChanged,
    Joined,
    KeyFrameRequested,
    Left,
    MediaReceived,
    MediaSkipped,
    Rejoining,
    RequestRefused,
    RosterChanged,
    StateChanged,
    StreamEnded,
    StreamStarted,
    event_json,
)
from townhall.wire import (
    ByeReason,
    Codec,
    ErrorCode,
    Member,
    SpeakingMode,
    StreamDrops,
    StreamInfo,
)

EVENTS: list[tuple[ClientEvent, str]] = [
    (Joined("main", "ana", "42", True), "joined"),
    (
        StateChanged("42", "All hands", SpeakingMode.OPEN, 3, (StreamInfo(1, "bo", Codec.OPUS),)),
        "state",
    ),
    (RosterChanged((Member("bo", hand_raised=True, display_name="Bo B."),), ("cy",)), "roster"),
    (FloorChanged(None), "floor"),
    (HandsChanged(("bo", "di")), "hands"),
    (ChatReceived("ana", "héllo\nthere", "bo", 7, "Ana <b>A</b>"), "chat"),
    (StreamStarted(1, "bo", Codec.OPUS), "stream-opened"),
    (StreamEnded(1), "stream-closed"),
    (MediaReceived(1, None, None, 9, 123, False, b"\x00" * 40), "media"),
    (KeyFrameRequested(2), "key-frame-requested"),
    (MediaSkipped(12, 30, (StreamDrops(2, 30), StreamDrops(1, 12))), "media-dropped"),
    (RequestRefused(ErrorCode.NOT_ALLOWED, "moderators only"), "error"),
    (ConnectionLost("dmz", ByeReason.SHUTDOWN, "restarting"), "connection-lost"),
    (Rejoining(2, 0.7512), "rejoining"),
    (Left(ByeReason.REMOVED, "bye", True), "left"),
]


def test_each_event_is_one_json_object_naming_its_type() -> None:
    for event, kind in EVENTS:
        line = json.dumps(event_json(event), ensure_ascii=False)
        assert "\n" not in line
        decoded = json.loads(line)
        assert decoded["type"] == kind, event


def test_the_json_fields_say_what_happened_without_media_bytes() -> None:
    as_json = {kind: event_json(event) for event, kind in EVENTS}
    assert as_json["roster"]["changed"] == [
        {
            "name": "bo",
            "display_name": "Bo B.",
            "moderator": False,
            "hand_raised": True,
            "floor": False,
            "muted": False,
        }
    ]
    assert as_json["chat"]["sender"] == "ana"
    assert as_json["chat"]["display_name"] == "Ana <b>A</b>"
    assert as_json["joined"]["display_name"] == "ana"  # none given: the name
    assert as_json["roster"]["left"] == ["cy"]
    assert as_json["state"]["streams"] == [{"stream_id": 1, "owner": "bo", "codec": "opus"}]
    assert as_json["media"] == {
        "type": "media",
        "stream_id": 1,
        "owner": None,
        "codec": None,
        "seq": 9,
        "timestamp_us": 123,
        "keyframe": False,
        "bytes": 40,
    }
    assert as_json["left"] == {
        "type": "left",
        "reason": "removed",
        "message": "bye",
        "by_peer": True,
    }
    assert as_json["rejoining"]["delay"] == 0.751
    assert as_json["media-dropped"] == {
        "type": "media-dropped",
        "audio_frames": 12,
        "video_frames": 30,
        "streams": [{"stream_id": 2, "frames": 30}, {"stream_id": 1, "frames": 12}],
    }
