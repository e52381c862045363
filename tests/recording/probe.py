"""ffprobe and ffmpeg (Debian's) as the tests' judges of a recording: streams, duration, audio."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np


def ffprobe(path: Path) -> dict[str, object]:
    """ffprobe's JSON of streams (with frame counts) and format; AssertionError if it refuses."""
    result = subprocess.run(  # noqa: S603
        [
            "ffprobe",
            "-v",
            "error",
            "-count_packets",
            "-show_streams",
            "-show_format",
            "-of",
            "json",
            str(path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ffprobe refused {path}: {result.stderr}"
    data: dict[str, object] = json.loads(result.stdout)
    return data


def codecs(probe: dict[str, object]) -> dict[str, dict[str, object]]:
    streams = probe["streams"]
    assert isinstance(streams, list)
    return {str(s["codec_type"]): s for s in streams}


def decoded_audio(path: Path, rate: int = 48_000) -> np.ndarray:
    """The file's audio as ffmpeg decodes it: mono s16 at ``rate``."""
    result = subprocess.run(  # noqa: S603
        [
            "ffmpeg",
            "-v",
            "error",
            "-i",
            str(path),
            "-map",
            "0:a:0",
            "-ac",
            "1",
            "-ar",
            str(rate),
            "-f",
            "s16le",
            "-",
        ],  # fmt: skip
        capture_output=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return np.frombuffer(result.stdout, dtype="<i2")


def dominant_frequency(pcm: np.ndarray, rate: int, start: float, seconds: float = 1.0) -> float:
    part = pcm[int(start * rate) : int((start + seconds) * rate)].astype(np.float64)
    part = part * np.hanning(len(part))
    spectrum = np.abs(np.fft.rfft(part))
    return float(np.fft.rfftfreq(len(part), 1 / rate)[int(np.argmax(spectrum))])


def decoded_video_frames(path: Path) -> int:
    """How many pictures ffmpeg decodes from the file's first video track."""
    result = subprocess.run(  # noqa: S603
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-count_frames",
            "-show_entries",
            "stream=nb_read_frames",
            "-of",
            "csv=p=0",
            str(path),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"ffprobe refused {path}: {result.stderr}"
    return int(result.stdout.strip().rstrip(","))


def killed_mid_write(writer_script: str, path: Path) -> None:
    """Run ``writer_script`` (Python, writing to ``sys.argv[1]``) until it prints
    "5 s written", then SIGKILL it: the file is what a crashed recorder leaves."""
    process = subprocess.Popen(  # noqa: S603
        [sys.executable, "-c", writer_script, str(path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "5 s written\n"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
