"""Recording benchmark: the recorder's CPU per stream, and its file against the relayed bytes.

The recorder's own work, without the network: N speakers' Opus streams (a
tone each, 20 ms packets at 32 kb/s, all talking at once: the worst case for
the mix) and, with ``--video``, one VP8 camera stream at 30 frames a second,
fed through ``townhall.recording``'s ``Mixer`` and ``WebmWriter`` as
``townhall record`` feeds them (the mixer pulled every 100 ms), on a
simulated clock so the run takes only the CPU it needs. It prints, per N:

- **CPU per stream**: process CPU seconds per second of recording, divided by
  the number of streams fed (audio streams, plus the video stream). 1.0 would
  be one core for one stream.
- **overhead**: the file's bytes against the media payload bytes relayed to
  the recorder (an audio-only event's file holds the mixed Opus track at 48
  kb/s, plus a black filler key frame a second in the video track).

Not measured here: decrypting TLS and parsing frames on the recorder's
connection (the client's cost, as for any listener), and the main server's
added cost, which is one more listener: one more delivery per frame
(bench/fanout.py, ≈1 µs).

    .venv/bin/python bench/recording.py              # 1, 2, 4, 8 speakers, 30 s each
    .venv/bin/python bench/recording.py --video --seconds 20 --json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from townhall.client.audio import FRAME_SAMPLES, SAMPLE_RATE, encode_opus
from townhall.recording.container import WebmWriter
from townhall.recording.mixer import Mixer


def tone(seconds: float, frequency: float) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.2 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)


def camera(seconds: float) -> list[tuple[bytes, bool]]:
    """VP8 at 640×360, 30 fps, ≈500 kb/s, a key frame every 2 s (as a camera sends)."""
    encoder = av.CodecContext.create("libvpx", "w")
    encoder.width, encoder.height, encoder.pix_fmt = 640, 360, "yuv420p"
    encoder.time_base = Fraction(1, 30)
    encoder.bit_rate = 500_000
    encoder.gop_size = 60
    rng = np.random.default_rng(1)
    base = rng.integers(0, 255, (360, 640, 3), dtype=np.uint8)
    out: list[tuple[bytes, bool]] = []
    for index in range(int(seconds * 30)):
        image = np.roll(base, index * 4, axis=1)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = index
        out += [(bytes(p), p.is_keyframe) for p in encoder.encode(frame)]
    return out


def run(speakers: int, seconds: float, video: list[tuple[bytes, bool]] | None) -> dict[str, float]:
    streams = [encode_opus(tone(seconds, 300 + 70 * i), bitrate=32_000) for i in range(speakers)]
    relayed = sum(len(p) for s in streams for p in s) + sum(len(p) for p, _ in video or [])
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "bench.webm"
        cpu = time.process_time()
        mixer = Mixer(0.0)
        writer = WebmWriter(path)
        packet_seconds = FRAME_SAMPLES / SAMPLE_RATE
        next_pull, frame = 0.1, 0
        for index in range(len(streams[0])):
            now = index * packet_seconds
            for number, packets in enumerate(streams):
                mixer.feed(number + 1, index, packets[index], now)
            while video and frame < len(video) and frame / 30 <= now:
                payload, key = video[frame]
                writer.video(round(frame * 1000 / 30), payload, key)
                frame += 1
            if now >= next_pull:
                writer.audio(mixer.pull(now))
                next_pull += 0.1
        writer.audio(mixer.drain())
        writer.close()
        used = time.process_time() - cpu
        size = path.stat().st_size
    fed = speakers + (1 if video else 0)
    return {
        "speakers": speakers,
        "video": bool(video),
        "seconds": seconds,
        "cpu_per_stream": used / seconds / fed,
        "relayed_bytes": relayed,
        "file_bytes": size,
        "overhead": size / relayed - 1,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--speakers", type=int, nargs="*", default=[1, 2, 4, 8])
    parser.add_argument("--video", action="store_true", help="add one VP8 camera stream")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    video = camera(args.seconds) if args.video else None
    results = [run(n, args.seconds, video) for n in args.speakers]
    if args.json:
        print(json.dumps(results, indent=1))
        return
    header = ("speakers", "video", "CPU/stream", "relayed", "file", "overhead")
    print("{:>8} {:>5} {:>11} {:>10} {:>10} {:>9}".format(*header))
    for r in results:
        print(
            f"{r['speakers']:>8} {'yes' if r['video'] else 'no':>5} "
            f"{r['cpu_per_stream'] * 100:>10.2f}% {r['relayed_bytes']:>10,} "
            f"{r['file_bytes']:>10,} {r['overhead'] * 100:>8.1f}%"
        )


if __name__ == "__main__":
    main()
