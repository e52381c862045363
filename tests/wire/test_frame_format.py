"""The 8-byte frame header and the media header, byte by byte."""

from __future__ import annotations

import struct

import pytest

from townhall.wire import (
    MAX_PAYLOAD,
    Channel,
    LocalProtocolError,
    MediaFrame,
    Ping,
    RemoteProtocolError,
    encode_message,
    seq_delta,
)
from townhall.wire.frames import HEADER_SIZE, MEDIA_HEADER_SIZE, pack_frame, parse_header


def header(version: int, channel: int, type_: int, flags: int, length: int) -> bytes:
    return struct.pack(">BBBBI", version, channel, type_, flags, length)


def test_a_control_frame_is_version_channel_type_flags_and_a_big_endian_length() -> None:
    data = encode_message(Ping(nonce=258)).data
    assert data[:HEADER_SIZE] == bytes([1, 0, 7, 0, 0, 0, 0, 4])
    assert data[HEADER_SIZE:] == b"\x91\xcd\x01\x02"  # msgpack [258]


def test_a_video_frame_carries_stream_sequence_timestamp_and_the_keyframe_flag() -> None:
    frame = MediaFrame.build(
        Channel.VIDEO,
        stream_id=0x01020304,
        seq=0xFFFFFFFF,
        timestamp_us=0x0102030405060708,
        payload=b"VP8",
        keyframe=True,
    )
    assert frame.data == (
        bytes([1, 2, 0, 1, 0, 0, 0, 19])
        + bytes.fromhex("01020304 ffffffff 0102030405060708")
        + b"VP8"
    )
    decoded = MediaFrame.decode(parse_header(frame.data), frame.data)
    assert decoded == frame
    assert bytes(decoded.payload) == b"VP8"


def test_an_audio_frame_has_no_flags() -> None:
    frame = MediaFrame.build(Channel.AUDIO, stream_id=1, seq=2, timestamp_us=3, payload=b"o")
    assert frame.data[:HEADER_SIZE] == bytes([1, 1, 0, 0, 0, 0, 0, MEDIA_HEADER_SIZE + 1])
    assert not frame.keyframe


@pytest.mark.parametrize(
    ("raw", "complaint"),
    [
        (header(2, 0, 1, 0, 1), "frame version 2"),
        (header(0x47, 0x45, 0x54, 0x20, 1), "frame version 71"),  # "GET " to the wrong port
        (header(1, 4, 1, 0, 1), "unknown channel 4"),
        (header(1, 0, 1, 0x01, 1), "flags 0x01 not allowed on CONTROL"),
        (header(1, 1, 0, 0x01, 20), "flags 0x01 not allowed on AUDIO"),
        (header(1, 2, 0, 0x02, 20), "flags 0x02 not allowed on VIDEO"),
        (header(1, 2, 1, 0, 20), "unknown VIDEO frame type 1"),
        (header(1, 1, 0, 0, 16), "has no media"),
        (header(1, 3, 1, 0, MAX_PAYLOAD[Channel.DATA] + 1), "the limit is 65536"),
        (header(1, 2, 0, 0, 0xFFFFFFFF), "the limit is 262144"),
    ],
)
def test_a_bad_header_is_refused_with_what_is_wrong(raw: bytes, complaint: str) -> None:
    with pytest.raises(RemoteProtocolError, match=complaint):
        parse_header(raw)


def test_each_channel_takes_a_payload_up_to_its_limit() -> None:
    for channel, limit in MAX_PAYLOAD.items():
        assert parse_header(header(1, channel, 0, 0, limit)).length == limit
    assert MAX_PAYLOAD[Channel.VIDEO] == 256 * 1024
    assert MAX_PAYLOAD[Channel.AUDIO] < MAX_PAYLOAD[Channel.CONTROL] < MAX_PAYLOAD[Channel.VIDEO]


def test_building_a_frame_over_its_limit_is_our_mistake() -> None:
    with pytest.raises(LocalProtocolError, match="limit"):
        pack_frame(Channel.CONTROL, 1, b"x" * (MAX_PAYLOAD[Channel.CONTROL] + 1))
    largest = MAX_PAYLOAD[Channel.VIDEO] - MEDIA_HEADER_SIZE
    MediaFrame.build(Channel.VIDEO, stream_id=1, seq=1, timestamp_us=1, payload=b"x" * largest)
    with pytest.raises(LocalProtocolError, match="1 to 262128 allowed"):
        MediaFrame.build(
            Channel.VIDEO, stream_id=1, seq=1, timestamp_us=1, payload=b"x" * (largest + 1)
        )


@pytest.mark.parametrize(
    ("channel", "fields", "complaint"),
    [
        (Channel.DATA, {}, "AUDIO or VIDEO"),
        (Channel.AUDIO, {"keyframe": True}, "only VIDEO"),
        (Channel.AUDIO, {"payload": b""}, "1 to"),
        (Channel.AUDIO, {"stream_id": 2**32}, "u32"),
        (Channel.AUDIO, {"seq": -1}, "u32"),
        (Channel.AUDIO, {"timestamp_us": 2**64}, "u64"),
    ],
)
def test_a_media_frame_with_a_field_out_of_range_is_not_built(
    channel: Channel, fields: dict[str, object], complaint: str
) -> None:
    arguments: dict[str, object] = {"stream_id": 1, "seq": 1, "timestamp_us": 1, "payload": b"x"}
    arguments.update(fields)
    with pytest.raises(LocalProtocolError, match=complaint):
        MediaFrame.build(channel, **arguments)  # type: ignore[arg-type]


def test_a_media_frame_payload_is_a_view_not_a_copy() -> None:
    frame = MediaFrame.build(Channel.AUDIO, stream_id=1, seq=1, timestamp_us=1, payload=b"opus")
    assert isinstance(frame.payload, memoryview)
    assert frame.payload.obj is frame.data


@pytest.mark.parametrize(
    ("earlier", "later", "delta"),
    [
        (5, 6, 1),
        (6, 5, -1),
        (0xFFFFFFFF, 0, 1),  # wraps
        (0xFFFFFFF0, 0x10, 0x20),
        (0x10, 0xFFFFFFF0, -0x20),
        (0, 0x7FFFFFFF, 0x7FFFFFFF),
        (0, 0x80000000, -0x80000000),
    ],
)
def test_sequence_numbers_compare_across_the_wrap(earlier: int, later: int, delta: int) -> None:
    assert seq_delta(earlier, later) == delta
