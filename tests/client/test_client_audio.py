"""Audio without a network: WAV → Opus → PCM keeps a 440 Hz tone, pacing, the recorder."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from tests.client.client_support import dominant_frequency, sine_wav
from townhall.client.audio import (
    FRAME_SAMPLES,
    SAMPLE_RATE,
    Recorder,
    decode_opus,
    encode_opus,
    mix,
    read_wav,
    send_packets,
    to_mono_48k,
    wav_to_opus,
    write_wav,
)
from townhall.client.events import MediaReceived
from townhall.wire import Codec


def test_a_440_hz_stereo_wav_at_44_1_khz_survives_opus_as_440_hz(tmp_path: Path) -> None:
    wav = sine_wav(tmp_path / "tone.wav", seconds=1.0, rate=44_100, channels=2)
    packets = wav_to_opus(wav)
    assert 50 <= len(packets) <= 52  # 20 ms each, plus what the encoder flushes
    assert all(0 < len(p) <= 8 * 1024 - 16 for p in packets)  # each fits an AUDIO frame
    pcm = decode_opus(packets)
    assert abs(len(pcm) - SAMPLE_RATE) <= 3 * FRAME_SAMPLES
    assert abs(dominant_frequency(pcm) - 440.0) <= 5.0


def test_resampling_keeps_the_length_and_the_pitch(tmp_path: Path) -> None:
    samples, rate = read_wav(sine_wav(tmp_path / "t.wav", rate=16_000, channels=1))
    assert rate == 16_000 and samples.shape == (16_000, 1)
    mono = to_mono_48k(samples, rate)
    assert abs(len(mono) - SAMPLE_RATE) < 100
    assert abs(dominant_frequency(mono) - 440.0) <= 2.0


def test_more_than_two_channels_are_averaged_to_mono(tmp_path: Path) -> None:
    samples, rate = read_wav(sine_wav(tmp_path / "six.wav", rate=48_000, channels=6))
    mono = to_mono_48k(samples, rate)
    assert len(mono) == 48_000
    assert abs(dominant_frequency(mono) - 440.0) <= 2.0


def test_only_16_bit_pcm_is_read(tmp_path: Path) -> None:
    path = tmp_path / "eight.wav"
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(1)
        wav.setframerate(8000)
        wav.writeframes(bytes(800))
    with pytest.raises(ValueError, match="16-bit"):
        read_wav(path)


def test_written_wav_is_48_khz_mono_16_bit(tmp_path: Path) -> None:
    pcm = (np.arange(4800) % 100).astype(np.int16)
    write_wav(tmp_path / "out.wav", pcm)
    with wave.open(str(tmp_path / "out.wav"), "rb") as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 48_000)
        assert wav.getnframes() == 4800
    again, rate = read_wav(tmp_path / "out.wav")
    assert rate == 48_000 and np.array_equal(again.reshape(-1), pcm)


def test_mix_places_tracks_on_one_timeline_and_clips() -> None:
    loud = np.full(4, 30_000, dtype=np.int16)
    mixed = mix([(0, loud), (2, loud)])
    assert mixed.tolist() == [30_000, 30_000, 32_767, 32_767, 30_000, 30_000]
    assert len(mix([])) == 0


async def test_packets_are_sent_one_per_frame_with_capture_timestamps_20_ms_apart() -> None:
    sent: list[tuple[bytes, int]] = []
    packets = [bytes([n]) for n in range(10)]
    await send_packets(lambda packet, ts: sent.append((packet, ts)), packets, frame_seconds=0.005)
    assert [p for p, _ in sent] == packets
    stamps = [ts for _, ts in sent]
    assert all(b - a == 5000 for a, b in zip(stamps, stamps[1:], strict=False))


def _media(stream: int, seq: int, payload: bytes) -> MediaReceived:
    return MediaReceived(stream, "bo", Codec.OPUS, seq, 0, False, payload)


def test_the_recorder_decodes_each_stream_and_fills_gaps_with_silence(tmp_path: Path) -> None:
    tone = encode_opus(to_mono_48k(*read_wav(sine_wav(tmp_path / "a.wav", seconds=0.2))))
    recorder = Recorder(start=100.0)
    for seq, packet in enumerate(tone[:5]):
        recorder.feed(_media(1, seq, packet), now=100.0)
    recorder.feed(_media(1, 7, tone[5]), now=100.2)  # 5 and 6 lost
    recorder.feed(_media(1, 3, tone[3]), now=100.2)  # late: dropped
    recorder.feed(_media(2, 0, tone[0]), now=100.5)  # a second speaker, 0.5 s in
    recorder.feed(MediaReceived(3, "cy", Codec.VP8, 0, 0, True, b"vp8"), now=100.0)
    assert recorder.streams == 2
    pcm = recorder.pcm()
    assert len(pcm) == 24_000 + FRAME_SAMPLES  # the second track ends last
    assert pcm[4 * FRAME_SAMPLES : 5 * FRAME_SAMPLES].any()
    assert not pcm[5 * FRAME_SAMPLES : 7 * FRAME_SAMPLES].any()  # the two lost frames
    assert pcm[7 * FRAME_SAMPLES : 8 * FRAME_SAMPLES].any()  # then packet 7
    recorder.write(tmp_path / "heard.wav")
    assert read_wav(tmp_path / "heard.wav")[0].shape == (len(pcm), 1)
