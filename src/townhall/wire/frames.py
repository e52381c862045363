"""Frames: the fixed header every message rides in, the size limits, and media frames.

This module turns bytes into frame headers and media frames and back. It does
not know what a control message means, which messages a connection may send,
nor anything about sockets or clocks. docs/protocol.md draws the same layout.

Every frame is an 8-byte header followed by its payload.

Format::

    offset  width  field    value
    0       1      version  0x01 (FRAME_VERSION); anything else is refused
    1       1      channel  0 CONTROL, 1 AUDIO, 2 VIDEO, 3 DATA
    2       1      type     message type within the channel (0 for media)
    3       1      flags    bit 0 KEYFRAME (VIDEO only); the other bits are 0
    4       4      length   payload length, unsigned, big-endian,
                            at most MAX_PAYLOAD[channel]
    8       length payload  CONTROL, DATA: one msgpack message (messages.py)
                            AUDIO, VIDEO: the media payload below

A media payload (AUDIO and VIDEO) starts with a 16-byte media header.

Format::

    offset  width  field         value
    0       4      stream id     unsigned, big-endian (StreamOpened names it)
    4       4      sequence      unsigned, big-endian, wraps to 0 after 2**32 - 1
    8       8      timestamp     capture time in microseconds, unsigned, big-endian
    16      n      codec data    one Opus packet or one VP8 frame, n >= 1

The length comes last in the header so a decoder reads the channel first and
refuses a frame that claims more than its channel allows as soon as the eight
header bytes are in, before it buffers any of the payload.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

from townhall.wire.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "FRAME_VERSION",
    "HEADER_SIZE",
    "KEYFRAME",
    "MAX_PAYLOAD",
    "MEDIA_HEADER_SIZE",
    "MEDIA_TYPE",
    "Channel",
    "FrameHeader",
    "MediaFrame",
    "pack_frame",
    "parse_header",
    "seq_delta",
]

FRAME_VERSION: Final = 1
HEADER_SIZE: Final = 8
MEDIA_HEADER_SIZE: Final = 16
MEDIA_TYPE: Final = 0
KEYFRAME: Final = 0x01

_HEADER: Final = struct.Struct(">BBBBI")
_MEDIA_HEADER: Final = struct.Struct(">IIQ")
_FRAME_AND_MEDIA_HEADER: Final = struct.Struct(">BBBBIIIQ")
_U32: Final = 0xFFFF_FFFF
_U64: Final = 0xFFFF_FFFF_FFFF_FFFF


class Channel(enum.IntEnum):
    """The four streams multiplexed in one connection.

    A slow listener may lose AUDIO and VIDEO frames; CONTROL and DATA are never
    dropped (docs/protocol.md, "Channels").
    """

    CONTROL = 0
    AUDIO = 1
    VIDEO = 2
    DATA = 3

    @property
    def is_media(self) -> bool:
        return self is Channel.AUDIO or self is Channel.VIDEO


_CHANNELS: Final = tuple(Channel)  # by number; faster than Channel(number) per frame

# A RosterUpdate or StateSnapshot at its largest fits CONTROL (tests check it);
# 8 KiB holds 120 ms of Opus at its top bitrate; 256 KiB holds a 1080p VP8
# keyframe at the bitrates the participant uses.
MAX_PAYLOAD: Final[Mapping[Channel, int]] = MappingProxyType(
    {
        Channel.CONTROL: 64 * 1024,
        Channel.AUDIO: 8 * 1024,
        Channel.VIDEO: 256 * 1024,
        Channel.DATA: 64 * 1024,
    }
)


@dataclass(frozen=True, slots=True)
class FrameHeader:
    """The 8 header bytes, checked: see the module's ``Format::`` block."""

    channel: Channel
    type: int
    flags: int
    length: int


def parse_header(data: bytes | bytearray, offset: int = 0) -> FrameHeader:
    """Read and check the header at ``offset``; ``data`` holds at least 8 bytes there.

    Raises RemoteProtocolError for a wrong version, an unknown channel, unknown
    flags, or a length over the channel's limit. Whether the type is one the
    channel knows is for the caller, which knows the messages.
    """
    version, channel_number, type_, flags, length = _HEADER.unpack_from(data, offset)
    if version != FRAME_VERSION:
        raise RemoteProtocolError(f"frame version {version}, expected {FRAME_VERSION}")
    if channel_number >= len(_CHANNELS):
        raise RemoteProtocolError(f"unknown channel {channel_number}")
    channel = _CHANNELS[channel_number]
    allowed_flags = KEYFRAME if channel is Channel.VIDEO else 0
    if flags & ~allowed_flags:
        raise RemoteProtocolError(f"flags {flags:#04x} not allowed on {channel.name}")
    if length > MAX_PAYLOAD[channel]:
        raise RemoteProtocolError(
            f"{channel.name} frame of {length} bytes, the limit is {MAX_PAYLOAD[channel]}"
        )
    if channel.is_media:
        if type_ != MEDIA_TYPE:
            raise RemoteProtocolError(f"unknown {channel.name} frame type {type_}")
        if length <= MEDIA_HEADER_SIZE:
            raise RemoteProtocolError(f"{channel.name} frame of {length} bytes has no media")
    return FrameHeader(channel, type_, flags, length)


def pack_frame(channel: Channel, type_: int, payload: bytes, flags: int = 0) -> bytes:
    """Header plus payload, ready to write; LocalProtocolError if it is too large."""
    if len(payload) > MAX_PAYLOAD[channel]:
        raise LocalProtocolError(
            f"{channel.name} payload of {len(payload)} bytes, the limit is {MAX_PAYLOAD[channel]}"
        )
    return _HEADER.pack(FRAME_VERSION, channel, type_, flags, len(payload)) + payload


@dataclass(frozen=True, slots=True)
class MediaFrame:
    """One audio or video frame, holding its encoded bytes.

    Build one with ``MediaFrame.build``: the frame is encoded once, there, and
    ``data`` is then written as is to every listener (a relay forwards the
    ``data`` of a received frame without encoding it again).
    """

    channel: Channel
    stream_id: int
    seq: int
    timestamp_us: int
    keyframe: bool
    data: bytes = field(repr=False)

    @classmethod
    def build(
        cls,
        channel: Channel,
        *,
        stream_id: int,
        seq: int,
        timestamp_us: int,
        payload: bytes,
        keyframe: bool = False,
    ) -> MediaFrame:
        if not channel.is_media:
            raise LocalProtocolError(f"media frames go on AUDIO or VIDEO, not {channel.name}")
        if keyframe and channel is not Channel.VIDEO:
            raise LocalProtocolError("only VIDEO frames are keyframes")
        if not (0 <= stream_id <= _U32 and 0 <= seq <= _U32 and 0 <= timestamp_us <= _U64):
            raise LocalProtocolError("stream id and sequence are u32, timestamp is u64")
        length = MEDIA_HEADER_SIZE + len(payload)
        if not payload or length > MAX_PAYLOAD[channel]:
            raise LocalProtocolError(
                f"{channel.name} codec data of {len(payload)} bytes: 1 to "
                f"{MAX_PAYLOAD[channel] - MEDIA_HEADER_SIZE} allowed"
            )
        head = _FRAME_AND_MEDIA_HEADER.pack(
            FRAME_VERSION,
            channel,
            MEDIA_TYPE,
            KEYFRAME if keyframe else 0,
            length,
            stream_id,
            seq,
            timestamp_us,
        )
        return cls(channel, stream_id, seq, timestamp_us, keyframe, head + payload)

    @classmethod
    def decode(cls, header: FrameHeader, data: bytes) -> MediaFrame:
        """``data`` is the whole frame, header included, as ``parse_header`` passed it."""
        stream_id, seq, timestamp_us = _MEDIA_HEADER.unpack_from(data, HEADER_SIZE)
        return cls(
            header.channel, stream_id, seq, timestamp_us, bool(header.flags & KEYFRAME), data
        )

    @property
    def payload(self) -> memoryview:
        """The codec data, without copying it."""
        return memoryview(self.data)[HEADER_SIZE + MEDIA_HEADER_SIZE :]


def seq_delta(earlier: int, later: int) -> int:
    """How far ``later`` is after ``earlier`` in wrapping u32 sequence numbers.

    Negative when ``later`` is in fact older (reordered), in [-2**31, 2**31);
    serial number arithmetic as in RFC 1982 §3.
    """
    return ((later - earlier + 0x8000_0000) & _U32) - 0x8000_0000
