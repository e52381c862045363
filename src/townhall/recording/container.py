"""``WebmWriter``: one WebM file, mixed Opus audio and relayed VP8 video, written as it goes.

The audio track is the mixer's PCM encoded once more to Opus (one track for
all speakers; a mix cannot be had without decoding). The video track takes
the relayed VP8 frames as they are, never decoded: a frame's bytes go into
the file as the sender encoded them, from a key frame on (``video`` drops
frames until one comes, and again after the source changes). Both tracks are
declared up front, so a recording of an audio-only event has an empty video
track. FFmpeg's interleaver holds every audio packet back until the VP8
track has one too, so when no video has come for ``FILLER_MS`` (an
audio-only event, a camera that stopped) the writer puts in a black key frame
it encoded once at the start (``filler``), and waits for the relayed
source's next key frame after it. Matroska's muxer keeps a cluster in memory until it closes; here a
cluster closes every ``CLUSTER_MS`` and is flushed to the file at once, so a
recorder killed with SIGKILL leaves a file that plays up to its last cluster
(without the duration and cues that ``close`` writes at the end). Video waits in
a queue until the audio has been written past its time, so the packets reach
the muxer in time order and it never holds them back to interleave.
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np

from townhall.client.audio import FRAME_SAMPLES, PCM, SAMPLE_RATE

__all__ = ["CLUSTER_MS", "FILLER_MS", "OPUS_BITRATE", "WebmWriter", "filler"]

CLUSTER_MS: Final = 1000
FILLER_MS: Final = 1000
OPUS_BITRATE: Final = 48_000
_VIDEO_TIME_BASE: Final = Fraction(1, 1000)
_MAX_QUEUED_VIDEO: Final = 600  # ≈ 20 s at 30 frames a second; older ones are dropped


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


class WebmWriter:
    """Writes ``path``; ``audio`` and ``video`` on the recording's timeline; ``close`` ends it."""

    def __init__(self, path: Path, *, width: int = 640, height: int = 360) -> None:
        self.path = path
        self._filler = filler(width, height)
        self._container = av.open(
            str(path),
            "w",
            format="webm",
            options={"cluster_time_limit": str(CLUSTER_MS), "flush_packets": "1"},
            container_options={"max_interleave_delta": "1"},  # µs: we order packets ourselves,
        )
        audio = self._container.add_stream("libopus", rate=SAMPLE_RATE, layout="mono")
        audio.bit_rate = OPUS_BITRATE
        self._audio = audio
        video = self._container.add_stream("libvpx", rate=30)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = _VIDEO_TIME_BASE
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
        if now_ms - self._last_video_ms >= FILLER_MS:
            self._mux_video(now_ms, self._filler, keyframe=True)
            self._need_key = self.waiting_for_key = True
            while self._video_queue and not self._video_queue[0][2]:
                self._video_queue.popleft()  # deltas on the filler would not decode

    def new_video_source(self) -> None:
        """The frames that follow come from another stream: wait for its key frame."""
        self._need_key = True

    def video(self, at_ms: int, payload: bytes, keyframe: bool) -> bool:
        """One relayed VP8 frame shown at ``at_ms`` of the recording; False when dropped
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
        """Write what is left, the cues and the sizes: the file is then seekable."""
        if self.closed:
            return
        self.closed = True
        for packet in self._audio.encode(None):
            self._container.mux(packet)
        self._flush_video(None)
        self._container.close()
