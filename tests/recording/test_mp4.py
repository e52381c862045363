"""H.264 parts: relayed H.264 frames copied into fragmented MP4 (ffprobe's and ffmpeg's verdict).

The frames are made here with libx264 in Annex B, as a browser sends them
(start codes, SPS and PPS before each key frame). The writer copies their NAL
units into the file untouched, beside the mixed Opus track; ffmpeg decodes
every picture; a writer process killed with SIGKILL leaves a file that plays
up to its last fragment; a frame that cannot start an MP4 is refused.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from tests.recording.probe import (
    codecs,
    decoded_audio,
    decoded_video_frames,
    ffprobe,
    killed_mid_write,
)
from tests.recording.test_writing import tone, vp8_frames
from townhall.client.audio import SAMPLE_RATE
from townhall.recording.container import Mp4Writer, h264_start, parameter_sets


def h264_frames(count: int, *, width: int = 320, height: int = 240) -> list[tuple[bytes, bool]]:
    """``count`` Annex B frames, a key frame every 15, as a browser's encoder gives them."""
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height, encoder.pix_fmt = width, height, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.gop_size = 15
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "bframes": "0"}
    out: list[tuple[bytes, bool]] = []
    for index in range(count):
        image = np.full((height, width, 3), index * 4 % 256, dtype=np.uint8)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    out += [(bytes(p), p.is_keyframe) for p in encoder.encode(None)]
    return out


def nal_units_annex_b(frame: bytes) -> list[bytes]:
    return [unit.rstrip(b"\x00") for unit in frame.split(b"\x00\x00\x01")[1:]]


def nal_units_avcc(sample: bytes) -> list[bytes]:
    units, at = [], 0
    while at < len(sample):
        size = int.from_bytes(sample[at : at + 4], "big")
        units.append(sample[at + 4 : at + 4 + size])
        at += 4 + size
    return units


def test_relayed_h264_frames_go_into_an_mp4_file_untouched(tmp_path: Path) -> None:
    frames = h264_frames(60)
    assert frames[0][1] and sum(key for _, key in frames) == 4
    start = h264_start(frames[0][0])
    assert start is not None and (start.width, start.height) == (320, 240)
    writer = Mp4Writer(tmp_path / "v.mp4", start)
    assert not writer.video(0, frames[1][0], frames[1][1])  # no key frame yet: dropped
    for index, (payload, key) in enumerate(frames):
        writer.video(round(index * 1000 / 30), payload, key)
    writer.audio(tone(3.0, 440))
    writer.close()

    probe = ffprobe(tmp_path / "v.mp4")
    streams = codecs(probe)
    assert streams["video"]["codec_name"] == "h264"
    assert streams["video"]["codec_tag_string"] == "avc1"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert streams["audio"]["codec_name"] == "opus"
    assert abs(float(probe["format"]["duration"]) - 3.0) < 0.1  # type: ignore[index]
    assert decoded_video_frames(tmp_path / "v.mp4") == len(frames) == writer.video_frames
    pcm = decoded_audio(tmp_path / "v.mp4")
    assert abs(len(pcm) / SAMPLE_RATE - 3.0) < 0.1
    with av.open(str(tmp_path / "v.mp4")) as container:
        extradata = container.streams.video[0].codec_context.extradata
        samples = [bytes(p) for p in container.demux(video=0) if p.size]
    assert extradata is not None and extradata[0] == 1  # an avcC box, from the first key frame
    assert [nal_units_avcc(s) for s in samples] == [nal_units_annex_b(f) for f, _ in frames]


def test_a_frame_that_cannot_start_an_mp4_is_refused() -> None:
    frames = h264_frames(3)
    assert parameter_sets(frames[0][0]) is not None
    assert h264_start(frames[1][0]) is None  # a delta frame: no SPS, no PPS
    assert h264_start(vp8_frames(1)[0][0]) is None
    assert h264_start(b"\x00\x00\x01\x67\x00\x00\x01\x68") is None  # empty parameter sets
    sps_pps = parameter_sets(frames[0][0])
    assert sps_pps is not None and h264_start(sps_pps + b"\x00\x00\x01\x65garbage") is None
    assert h264_start(b"") is None


WRITER = """
import sys, time
import numpy as np
from pathlib import Path
from tests.recording.test_mp4 import h264_frames
from townhall.recording.container import Mp4Writer, h264_start
frames = h264_frames(450)
writer = Mp4Writer(Path(sys.argv[1]), h264_start(frames[0][0]))
t = np.arange(960)
n = 0
while True:
    pcm = (9000 * np.sin(2 * np.pi * 440 * (t + n) / 48000)).astype(np.int16)
    writer.video(n // 48, *frames[n // 960 % 450])  # 50 frames a second
    writer.audio(pcm)
    n += 960
    if n == 960 * 250:
        print("5 s written", flush=True)
    time.sleep(0.002)
"""


def test_a_writer_killed_mid_recording_leaves_an_mp4_that_plays(tmp_path: Path) -> None:
    path = tmp_path / "killed.mp4"
    killed_mid_write(WRITER, path)
    streams = codecs(ffprobe(path))
    assert streams["audio"]["codec_name"] == "opus"
    assert streams["video"]["codec_name"] == "h264"
    pcm = decoded_audio(path)
    assert len(pcm) >= 3.5 * SAMPLE_RATE  # at most about a fragment lost
    assert decoded_video_frames(path) >= 3.5 * 50
