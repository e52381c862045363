"""The recording's media files, written as they go: ``WebmWriter`` (VP8) and ``Mp4Writer`` (H.264).

Both writers share one interface (``MediaWriter``) and one audio track: the
mixer's PCM encoded once more to Opus (one track for all speakers; a mix
cannot be had without decoding). The video track takes the relayed frames as
they are, never decoded: a frame's bytes go into the file as the sender
encoded them, from a key frame on (``video`` drops frames until one comes, and
again after the source changes). Video waits in a queue until the audio has
been written past its time, so the packets reach the muxer in time order and
it never holds them back to interleave.

``WebmWriter``: both tracks are declared up front, so a recording of an
audio-only event has an empty video track. FFmpeg's interleaver holds every
audio packet back until the VP8 track has one too, so when no video has come
for ``FILLER_MS`` (an audio-only event, a camera that stopped) the writer puts
in a black key frame it encoded once at the start (``filler``), and waits for
the relayed source's next key frame after it. Matroska's muxer keeps a
cluster in memory until it closes; here a cluster closes every ``CLUSTER_MS``
and is flushed to the file at once, so a recorder killed with SIGKILL leaves a
file that plays up to its last cluster (without the duration and cues that
``close`` writes at the end).

``Mp4Writer``: fragmented MP4 (an empty ``moov`` first, then a ``moof``/``mdat``
fragment at each key frame and at least every ``CLUSTER_MS``, each flushed at
once), so a recorder killed with SIGKILL leaves a file that plays up to its
last fragment. It is started with the first key frame's parameter sets
(SPS and PPS, ``parameter_sets``): the ``avcC`` box is written with the
header, before any sample. The relayed frames are Annex B (start codes, as
the browser sends them); the muxer rewrites each start code as a length, the
NAL units themselves are copied. FFmpeg's interleaver does not wait for an
empty H.264 track, so there is no filler: audio-only stretches are audio only.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final, Protocol

import av
import numpy as np
from av.container import OutputContainer

from townhall.client.audio import FRAME_SAMPLES, PCM, SAMPLE_RATE

__all__ = [
    "CLUSTER_MS",
    "FILLER_MS",
    "H264Start",
    "OPUS_BITRATE",
    "MediaWriter",
    "Mp4Writer",
    "WebmWriter",
    "filler",
    "h264_start",
    "parameter_sets",
]

CLUSTER_MS: Final = 1000
FILLER_MS: Final = 1000
OPUS_BITRATE: Final = 48_000
_VIDEO_TIME_BASE: Final = Fraction(1, 1000)
_MAX_QUEUED_VIDEO: Final = 600  # ≈ 20 s at 30 frames a second; older ones are dropped
_START_CODE: Final = b"\x00\x00\x01"
_SPS: Final = 7
_PPS: Final = 8


def filler(width: int, height: int) -> bytes:
    """One black VP8 key frame of ``width`` × ``height``."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    image = np.zeros((height, width, 3), dtype=np.uint8)
    frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
    frame.pts = 0
    packets = [bytes(p) for p in (*encoder.encode(frame), *encoder.encode(None))]
    return packets[0]


def parameter_sets(frame: bytes) -> bytes | None:
    """The SPS and PPS NAL units of an Annex B H.264 frame, in Annex B (what the MP4
    muxer turns into ``avcC``); None when the frame lacks either."""
    units = [unit.rstrip(b"\x00") for unit in frame.split(_START_CODE)[1:]]
    found = [unit for unit in units if unit and unit[0] & 0x1F in (_SPS, _PPS)]
    kinds = {unit[0] & 0x1F for unit in found}
    if kinds != {_SPS, _PPS}:
        return None
    return b"".join(b"\x00\x00\x00\x01" + unit for unit in found)


@dataclass(frozen=True, slots=True)
class H264Start:
    """What an MP4 file needs of its first key frame: parameter sets and picture size."""

    parameters: bytes
    width: int
    height: int


def h264_start(frame: bytes) -> H264Start | None:
    """``frame``'s ``H264Start`` when it is an H.264 key frame that decodes (it is decoded
    once, for its size); None otherwise (a relayed frame is untrusted)."""
    parameters = parameter_sets(frame)
    if parameters is None:
        return None
    decoder = av.CodecContext.create("h264", "r")
    try:
        pictures = [*decoder.decode(av.Packet(frame)), *decoder.decode(None)]
    except av.FFmpegError:
        return None
    if not pictures:
        return None
    return H264Start(parameters, pictures[0].width, pictures[0].height)


class MediaWriter(Protocol):
    """What the recorder asks of a part's media file, whatever its container."""

    path: Path
    video_frames: int
    waiting_for_key: bool
    closed: bool

    @property
    def seconds(self) -> float: ...

    def audio(self, pcm: PCM) -> None: ...

    def new_video_source(self) -> None: ...

    def video(self, at_ms: int, payload: bytes, keyframe: bool) -> bool: ...

    def close(self) -> None: ...


class _CopyingWriter:
    """Opus audio encoded here, relayed video copied; the container is the subclass's."""

    def __init__(self, path: Path, container: OutputContainer, video: av.VideoStream) -> None:
        self.path = path
        self._container = container
        audio = container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        audio.bit_rate = OPUS_BITRATE
        self._audio = audio
        self._video = video
        self._samples = 0  # audio samples given to the encoder
        self._video_queue: deque[tuple[int, bytes, bool]] = deque()
        self._last_video_ms = -1
        self._need_key = True
        self.video_frames = 0  # relayed frames written
        self.waiting_for_key = False  # a relayed source's next key frame is needed
        self.closed = False

    @property
    def seconds(self) -> float:
        return self._samples / SAMPLE_RATE

    def audio(self, pcm: PCM) -> None:
        """The next samples of the mix (48 kHz mono), a whole number of 20 ms frames."""
        for start in range(0, len(pcm), FRAME_SAMPLES):
            chunk = pcm[start : start + FRAME_SAMPLES]
            if len(chunk) < FRAME_SAMPLES:
                chunk = np.pad(chunk, (0, FRAME_SAMPLES - len(chunk)))
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(chunk, dtype=np.int16).reshape(1, -1),
                format="s16",
                layout="mono",
            )
            frame.sample_rate = SAMPLE_RATE
            frame.pts = self._samples
            frame.time_base = Fraction(1, SAMPLE_RATE)
            self._samples += FRAME_SAMPLES
            for packet in self._audio.encode(frame):
                self._container.mux(packet)
        now_ms = self._samples * 1000 // SAMPLE_RATE
        self._flush_video(now_ms)
        self._after_audio(now_ms)

    def _after_audio(self, now_ms: int) -> None:
        """The audio is written up to ``now_ms``: anything the container needs then."""

    def new_video_source(self) -> None:
        """The frames that follow come from another stream: wait for its key frame."""
        self._need_key = True

    def video(self, at_ms: int, payload: bytes, keyframe: bool) -> bool:
        """One relayed frame shown at ``at_ms`` of the recording; False when dropped
        (waiting for a key frame)."""
        if self._need_key and not keyframe:
            return False
        self._need_key = self.waiting_for_key = False
        if len(self._video_queue) >= _MAX_QUEUED_VIDEO:
            self._video_queue.popleft()
            self._need_key = not keyframe
        self._video_queue.append((at_ms, payload, keyframe))
        return True

    def _flush_video(self, until_ms: int | None) -> None:
        while self._video_queue and (until_ms is None or self._video_queue[0][0] <= until_ms):
            at_ms, payload, keyframe = self._video_queue.popleft()
            self._mux_video(at_ms, payload, keyframe=keyframe)
            self.video_frames += 1

    def _mux_video(self, at_ms: int, payload: bytes, *, keyframe: bool) -> None:
        pts = max(at_ms, self._last_video_ms + 1)
        self._last_video_ms = pts
        packet = av.Packet(payload)
        packet.stream = self._video
        packet.time_base = _VIDEO_TIME_BASE
        packet.pts = packet.dts = pts
        packet.is_keyframe = keyframe
        self._container.mux(packet)

    def close(self) -> None:
        """Write what is left and the container's index: the file is then seekable."""
        if self.closed:
            return
        self.closed = True
        for packet in self._audio.encode(None):
            self._container.mux(packet)
        self._flush_video(None)
        self._container.close()


class WebmWriter(_CopyingWriter):
    """Writes ``path`` (WebM, VP8); ``audio`` and ``video`` on the recording's timeline;
    ``close`` ends it."""

    def __init__(self, path: Path, *, width: int = 640, height: int = 360) -> None:
        self._filler = filler(width, height)
        container = av.open(
            str(path),
            "w",
            format="webm",
            options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
            container_options={"max_interleave_delta": "1"},  # µs: we order packets ourselves,
        )
        video = container.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = _VIDEO_TIME_BASE
        super().__init__(path, container, video)

    def _after_audio(self, now_ms: int) -> None:
        if now_ms - self._last_video_ms >= FILLER_MS:
            self._mux_video(now_ms, self._filler, keyframe=True)
            self._need_key = self.waiting_for_key = True
            while self._video_queue and not self._video_queue[0][2]:
                self._video_queue.popleft()  # deltas on the filler would not decode


class Mp4Writer(_CopyingWriter):
    """Writes ``path`` (fragmented MP4, H.264) whose video starts with the key frame
    ``start`` was read from; the rest as ``WebmWriter``."""

    def __init__(self, path: Path, start: H264Start) -> None:
        container = av.open(
            str(path),
            "w",
            format="mp4",
            options={
                "movflags": "frag_keyframe+empty_moov+default_base_moof",
                "frag_duration": str(CLUSTER_MS * 1000),  # µs: audio-only stretches too
                "flush_packets": "1",
            },
            container_options={"max_interleave_delta": "1"},  # µs: we order packets ourselves,
        )
        video = container.add_stream("h264", rate=30)
        video.time_base = _VIDEO_TIME_BASE
        video.width, video.height = start.width, start.height
        video.codec_context.extradata = start.parameters
        super().__init__(path, container, video)
