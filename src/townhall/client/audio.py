"""Audio for the participant: WAV to Opus packets and back, paced sending, recording.

Pure functions do the work and are tested without a network: ``read_wav``
(16-bit PCM, any rate and channel count), ``to_mono_48k`` (``av.AudioResampler``;
more than two channels are averaged first), ``encode_opus`` (libopus, one
packet per 20 ms), ``OpusDecoder`` / ``decode_opus``, ``mix`` and
``write_wav`` (48 kHz mono 16-bit, with ``wave``). Two small drivers use them:
``send_packets`` sends packets in real time, one per 20 ms at due times
computed from the start on the loop's clock (so sleeping late never
accumulates into drift), and ``Recorder`` decodes what a session receives,
one decoder and one track per stream, placed on a common timeline and mixed
when written. It knows nothing of connections: the caller gives it a
``send`` callable and feeds it ``MediaReceived`` events.
"""

from __future__ import annotations

import asyncio
import time
import wave
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Final

import av
import numpy as np
import numpy.typing as npt

from townhall.client.events import MediaReceived
from townhall.wire import Codec, seq_delta

__all__ = [
    "FRAME_SAMPLES",
    "FRAME_SECONDS",
    "SAMPLE_RATE",
    "OpusDecoder",
    "Recorder",
    "decode_opus",
    "encode_opus",
    "mix",
    "read_wav",
    "send_packets",
    "to_mono_48k",
    "wav_to_opus",
    "write_wav",
]

SAMPLE_RATE: Final = 48_000
FRAME_SAMPLES: Final = 960  # 20 ms at 48 kHz: Opus's usual frame for speech
FRAME_SECONDS: Final = FRAME_SAMPLES / SAMPLE_RATE
OPUS_BITRATE: Final = 48_000
MAX_GAP_FRAMES: Final = 250  # a gap in a stream filled with at most 5 s of silence

PCM = npt.NDArray[np.int16]


def read_wav(path: Path) -> tuple[PCM, int]:
    """Samples (frames × channels, int16) and the rate of a 16-bit PCM WAV file."""
    with wave.open(str(path), "rb") as wav:
        if wav.getcomptype() != "NONE" or wav.getsampwidth() != 2:
            raise ValueError(f"{path}: only uncompressed 16-bit PCM WAV is supported")
        channels, rate = wav.getnchannels(), wav.getframerate()
        data = wav.readframes(wav.getnframes())
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    return samples.reshape(-1, channels), rate


def to_mono_48k(samples: PCM, rate: int) -> PCM:
    """``samples`` (frames × channels) as 48 kHz mono, resampled by FFmpeg's swresample."""
    if samples.ndim == 1:
        samples = samples.reshape(-1, 1)
    if samples.shape[0] == 0:
        return np.zeros(0, dtype=np.int16)
    if samples.shape[1] > 2:  # no layout name for any count: average to mono first
        samples = samples.astype(np.int32).mean(axis=1).round().astype(np.int16).reshape(-1, 1)
    layout = "mono" if samples.shape[1] == 1 else "stereo"
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples).reshape(1, -1), format="s16", layout=layout
    )
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    out = [
        f.to_ndarray().reshape(-1) for f in (*resampler.resample(frame), *resampler.resample(None))
    ]
    return np.concatenate(out).astype(np.int16) if out else np.zeros(0, dtype=np.int16)


def encode_opus(pcm: PCM, *, bitrate: int = OPUS_BITRATE) -> list[bytes]:
    """48 kHz mono samples as Opus packets of 20 ms each (the last padded with silence)."""
    encoder = av.CodecContext.create("libopus", "w")
    encoder.sample_rate = SAMPLE_RATE
    encoder.layout = "mono"
    encoder.format = "s16"
    encoder.bit_rate = bitrate
    encoder.time_base = Fraction(1, SAMPLE_RATE)
    encoder.open()
    packets: list[bytes] = []
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
        frame.pts = start
        frame.time_base = Fraction(1, SAMPLE_RATE)
        packets.extend(bytes(packet) for packet in encoder.encode(frame))
    packets.extend(bytes(packet) for packet in encoder.encode(None))
    return packets


def wav_to_opus(path: Path, *, bitrate: int = OPUS_BITRATE) -> list[bytes]:
    """A WAV file as 20 ms Opus packets, ready to send."""
    samples, rate = read_wav(path)
    return encode_opus(to_mono_48k(samples, rate), bitrate=bitrate)


def _to_int16(samples: npt.NDArray[np.generic]) -> PCM:
    if samples.dtype == np.int16:
        return samples.astype(np.int16)
    scaled = np.clip(samples.astype(np.float64), -1.0, 1.0) * 32767.0
    return scaled.round().astype(np.int16)


class OpusDecoder:
    """Decodes one stream's Opus packets, in order, to 48 kHz mono int16."""

    def __init__(self) -> None:
        decoder = av.CodecContext.create("opus", "r")
        decoder.sample_rate = SAMPLE_RATE
        decoder.layout = "mono"
        self._decoder = decoder

    def decode(self, packet: bytes) -> PCM:
        """The samples of one packet; an undecodable packet gives 20 ms of silence."""
        try:
            frames = self._decoder.decode(av.Packet(packet))
        except av.FFmpegError:
            return np.zeros(FRAME_SAMPLES, dtype=np.int16)
        parts = [
            _to_int16(frame.to_ndarray()).reshape(-1, frame.samples).mean(axis=0).astype(np.int16)
            for frame in frames
        ]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def decode_opus(packets: Iterable[bytes]) -> PCM:
    decoder = OpusDecoder()
    parts = [decoder.decode(packet) for packet in packets]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int16)


def mix(tracks: Sequence[tuple[int, PCM]]) -> PCM:
    """Tracks (start sample, samples) summed onto one timeline, clipped to int16."""
    if not tracks:
        return np.zeros(0, dtype=np.int16)
    length = max(start + len(samples) for start, samples in tracks)
    total = np.zeros(length, dtype=np.int32)
    for start, samples in tracks:
        total[start : start + len(samples)] += samples
    return np.clip(total, -32768, 32767).astype(np.int16)


def write_wav(path: Path, pcm: PCM, rate: int = SAMPLE_RATE) -> None:
    """Mono 16-bit PCM WAV."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.astype("<i2").tobytes())


async def send_packets(
    send: Callable[[bytes, int], object],
    packets: Sequence[bytes],
    *,
    frame_seconds: float = FRAME_SECONDS,
) -> None:
    """Call ``send(packet, timestamp_us)`` for each packet in real time.

    Packet ``i`` is due at ``start + i × 20 ms`` on the loop's clock; a late
    wakeup sends at once and the next due time does not move, so the pace
    never drifts. Timestamps are capture times in Unix microseconds.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    wall_us = time.time_ns() // 1000
    for index, packet in enumerate(packets):
        delay = start + index * frame_seconds - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        send(packet, wall_us + round(index * frame_seconds * 1_000_000))


@dataclass
class _Track:
    start: int  # sample of the common timeline where the stream began
    decoder: OpusDecoder
    parts: list[PCM]
    last_seq: int


class Recorder:
    """What a session hears: each Opus stream decoded to its own track, mixed on ``pcm()``.

    A stream's track starts where its first packet arrived, counted from the
    recorder's start on the clock ``feed`` is given; after that its samples
    follow packet by packet, a gap in the sequence filled with silence and a
    late or repeated packet dropped.
    """

    def __init__(self, start: float) -> None:
        self._start = start
        self._tracks: dict[int, _Track] = {}

    def feed(self, event: MediaReceived, now: float) -> None:
        if event.codec is not Codec.OPUS:
            return
        track = self._tracks.get(event.stream_id)
        if track is None:
            start = max(0, round((now - self._start) * SAMPLE_RATE))
            track = _Track(start, OpusDecoder(), [], event.seq - 1)
            self._tracks[event.stream_id] = track
        ahead = seq_delta(track.last_seq, event.seq)
        if ahead <= 0:
            return
        if ahead > 1:
            missing = min(ahead - 1, MAX_GAP_FRAMES) * FRAME_SAMPLES
            track.parts.append(np.zeros(missing, dtype=np.int16))
        track.last_seq = event.seq
        track.parts.append(track.decoder.decode(event.payload))

    @property
    def streams(self) -> int:
        return len(self._tracks)

    def pcm(self) -> PCM:
        return mix(
            [
                (
                    track.start,
                    np.concatenate(track.parts) if track.parts else np.zeros(0, dtype=np.int16),
                )
                for track in self._tracks.values()
            ]
        )

    def write(self, path: Path) -> None:
        write_wav(path, self.pcm())
