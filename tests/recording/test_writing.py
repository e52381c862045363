"""The recording's files on their own: mixing, WebM (ffprobe's verdict), WebVTT, a SIGKILL.

Overlapping tones fed as Opus packets come out as one audio track holding
both; relayed VP8 frames are copied into the video track untouched; a writer
process killed with SIGKILL mid-recording leaves a file ffprobe and ffmpeg
accept, holding what it wrote up to its last second or so.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.recording.probe import (
    codecs,
    decoded_audio,
    dominant_frequency,
    ffprobe,
    killed_mid_write,
)
from townhall.client.audio import FRAME_SAMPLES, SAMPLE_RATE, encode_opus
from townhall.recording.chat import ChatTrack
from townhall.recording.container import WebmWriter
from townhall.recording.mixer import Mixer


def tone(seconds: float, frequency: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def feed(mixer: Mixer, stream: int, packets: list[bytes], start: float) -> None:
    for index, packet in enumerate(packets):
        mixer.feed(stream, 1000 + index, packet, start + index * FRAME_SAMPLES / SAMPLE_RATE)


def vp8_frames(count: int) -> list[tuple[bytes, bool]]:
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 320, 240, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = 300_000
    out: list[tuple[bytes, bool]] = []
    for index in range(count):
        image = np.full((240, 320, 3), index * 4 % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    return out


def test_overlapping_speakers_are_mixed_into_one_track(tmp_path: Path) -> None:
    mixer = Mixer(0.0, delay=0.2)
    feed(mixer, 1, encode_opus(tone(3.0, 440)), 0.0)  # 0 s to 3 s
    feed(mixer, 2, encode_opus(tone(3.0, 660)), 2.0)  # 2 s to 5 s: one second together
    writer = WebmWriter(tmp_path / "r.webm")
    writer.audio(mixer.pull(4.0))
    writer.audio(mixer.drain())
    writer.close()

    probe = ffprobe(tmp_path / "r.webm")
    streams = codecs(probe)
    assert streams["audio"]["codec_name"] == "opus"
    assert [s["codec_type"] for s in probe["streams"]].count("audio") == 1  # type: ignore[attr-defined]
    assert abs(float(probe["format"]["duration"]) - 5.0) < 0.2  # type: ignore[index]
    pcm = decoded_audio(tmp_path / "r.webm")
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, 0.5) - 440) <= 5
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, 3.5) - 660) <= 5
    both = np.abs(np.fft.rfft(pcm[int(2.2 * SAMPLE_RATE) : int(2.8 * SAMPLE_RATE)]))
    freqs = np.fft.rfftfreq(int(0.6 * SAMPLE_RATE), 1 / SAMPLE_RATE)
    top_two = sorted(round(float(f)) for f in freqs[np.argsort(both)[-2:]])
    assert abs(top_two[0] - 440) <= 5 and abs(top_two[1] - 660) <= 5


def test_late_and_repeated_packets_are_dropped_not_mixed_twice() -> None:
    mixer = Mixer(0.0, delay=0.1)
    packets = encode_opus(tone(1.0, 440))
    feed(mixer, 1, packets, 0.0)
    mixer.feed(1, 1000, packets[0], 0.5)  # a repeat
    assert mixer.dropped == 1
    assert len(mixer.pull(0.6)) == round(0.5 * SAMPLE_RATE)
    mixer.feed(2, 7, packets[0], 0.0)  # arrives now, placed now: not in the past
    assert mixer.dropped == 1


def test_relayed_vp8_frames_go_into_the_file_as_they_are(tmp_path: Path) -> None:
    frames = vp8_frames(30)
    writer = WebmWriter(tmp_path / "v.webm")
    assert not writer.video(0, frames[1][0], frames[1][1])  # no key frame yet: dropped
    for index, (payload, key) in enumerate(frames):
        writer.video(round(index * 1000 / 30), payload, key)
    writer.audio(np.zeros(SAMPLE_RATE, dtype=np.int16))
    writer.close()
    streams = codecs(ffprobe(tmp_path / "v.webm"))
    assert streams["video"]["codec_name"] == "vp8"
    assert int(streams["video"]["nb_read_packets"]) == len(frames)
    with av.open(str(tmp_path / "v.webm")) as container:
        packets = [bytes(p) for p in container.demux(video=0) if p.size]
    with av.open(str(tmp_path / "v.webm")) as container:
        shown = next(container.decode(video=0))
    assert (shown.width, shown.height) == (320, 240)  # the sender's size, from its frames
    assert packets == [payload for payload, _ in frames]  # byte for byte: never re-encoded


def test_chat_is_a_webvtt_track(tmp_path: Path) -> None:
    track = ChatTrack(tmp_path / "chat.vtt")
    track.add(1.5, "pia", "hello <b>all</b> --> & bye")
    track.add(3661.25, "olga", "line one\nline two")
    track.close()
    text = (tmp_path / "chat.vtt").read_text()
    assert text.startswith("WEBVTT\n\n")
    assert (
        "00:00:01.500 --> 00:00:06.500\n<v pia>hello &lt;b&gt;all&lt;/b&gt; --&gt; &amp; bye"
        in text
    )
    assert "01:01:01.250 --> 01:01:06.250\n<v olga>line one\nline two\n\n" in text


WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from townhall.recording.container import WebmWriter
writer = WebmWriter(Path(sys.argv[1]))
t = np.arange(960)
n = 0
while True:
    pcm = (9000 * np.sin(2 * np.pi * 440 * (t + n) / 48000)).astype(np.int16)
    writer.audio(pcm)
    n += 960
    if n == 960 * 250:
        print("5 s written", flush=True)
    time.sleep(0.002)
"""


def test_a_writer_killed_mid_recording_leaves_a_file_that_plays(tmp_path: Path) -> None:
    path = tmp_path / "killed.webm"
    killed_mid_write(WRITER, path)
    streams = codecs(ffprobe(path))
    assert streams["audio"]["codec_name"] == "opus"
    pcm = decoded_audio(path)
    assert len(pcm) >= 3.5 * SAMPLE_RATE  # at most about a cluster lost
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, 1.0) - 440) <= 5
