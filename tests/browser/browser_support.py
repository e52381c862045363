"""Browser test support: real Chromium driven by Playwright, tone files, a static page server.

Chromium is Debian's ``/usr/bin/chromium`` (Playwright's own browser downloads are not used),
started headless with a fake camera and a fake microphone that plays a WAV file the test
writes, so what crosses the system is known. TLS trust comes from an NSS database in a
temporary ``$HOME`` made with ``certutil`` — never from ``--ignore-certificate-errors``.
The fixtures that use these helpers live in ``tests/browser/conftest.py``.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import ssl
import subprocess
import threading
import wave
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from playwright.sync_api import BrowserContext, Playwright

CHROMIUM = Path("/usr/bin/chromium")
REPO = Path(__file__).resolve().parents[2]
STATIC_ROOT = REPO / "src" / "townhall" / "browser" / "static"
PAGES_ROOT = Path(__file__).resolve().parent / "pages"
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
SAMPLE_RATE = 48_000


def missing_tools() -> list[str]:
    """What the browser tests need and this machine lacks (the tests skip when not empty)."""
    missing = []
    if not CHROMIUM.exists():
        missing.append(str(CHROMIUM))
    if shutil.which("certutil") is None:
        missing.append("certutil (libnss3-tools)")
    return missing


def make_nss_home(home: Path, ca_files: Iterable[Path] = ()) -> Path:
    """Make ``home/.pki/nssdb`` trusting each CA file; Chromium reads it when ``$HOME=home``."""
    nssdb = home / ".pki" / "nssdb"
    nssdb.mkdir(parents=True, exist_ok=True)
    certutil = shutil.which("certutil") or "certutil"
    subprocess.run(
        [certutil, "-N", "--empty-password", "-d", f"sql:{nssdb}"],
        check=True,
        capture_output=True,
    )
    for index, ca_file in enumerate(ca_files):
        subprocess.run(
            [
                certutil,
                "-A",
                "-d",
                f"sql:{nssdb}",
                "-t",
                "C,,",
                "-n",
                f"townhall-test-{index}",
                "-i",
                str(ca_file),
            ],
            check=True,
            capture_output=True,
        )
    return home


def tone_samples(
    frequency: float,
    seconds: float,
    *,
    amplitude: float = 0.5,
    sample_rate: int = SAMPLE_RATE,
    click_every: float | None = None,
    click_seconds: float = 0.005,
) -> np.ndarray:
    """A sine tone as int16 samples; with ``click_every`` a full-scale burst marks each period.

    The burst (a square wave at a quarter of the sample rate, ``click_seconds`` long at the
    start of each period) is the marker a latency measurement looks for again at the far end.
    """
    count = int(round(seconds * sample_rate))
    t = np.arange(count) / sample_rate
    signal = amplitude * np.sin(2 * np.pi * frequency * t)
    if click_every is not None:
        period = int(round(click_every * sample_rate))
        width = int(round(click_seconds * sample_rate))
        in_click = (np.arange(count) % period) < width
        square = np.where((np.arange(count) // 6) % 2 == 0, 0.95, -0.95)
        signal = np.where(in_click, square, signal)
    return np.round(np.clip(signal, -1.0, 1.0) * 32767).astype("<i2")


def write_tone_wav(path: Path, frequency: float, seconds: float = 10.0, **options: float) -> Path:
    """Write a 48 kHz mono 16-bit WAV of a sine tone (see ``tone_samples`` for the options).

    Chromium's fake microphone loops the file, so a few seconds are enough for any test.
    """
    samples = tone_samples(frequency, seconds, **options)  # type: ignore[arg-type]
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(samples.tobytes())
    return path


def chromium_args(audio_file: Path | None = None, extra: Sequence[str] = ()) -> list[str]:
    args = [
        "--use-fake-device-for-media-stream",
        "--use-fake-ui-for-media-stream",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        # Headless tabs are "hidden": keep timers, rAF and audio running at full rate.
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
        "--autoplay-policy=no-user-gesture-required",
    ]
    if audio_file is not None:
        args.append(f"--use-file-for-fake-audio-capture={audio_file}")
    args.extend(extra)
    return args


def launch_chromium(
    playwright: Playwright,
    workdir: Path,
    *,
    audio_file: Path | None = None,
    ca_files: Iterable[Path] = (),
    extra_args: Sequence[str] = (),
    headless: bool = True,
) -> BrowserContext:
    """A fresh headless Chromium (own profile, own ``$HOME`` and NSS db) in ``workdir``."""
    home = make_nss_home(workdir / "home", ca_files)
    profile = workdir / "profile"
    profile.mkdir(parents=True, exist_ok=True)
    env: dict[str, str | float | bool] = {
        key: value for key, value in os.environ.items() if key != "DISPLAY"
    }
    env["HOME"] = str(home)
    return playwright.chromium.launch_persistent_context(
        str(profile),
        executable_path=str(CHROMIUM),
        headless=headless,
        args=chromium_args(audio_file, extra_args),
        env=env,
        ignore_https_errors=False,
    )


def screenshot_path(name: str) -> Path:
    """Where a test writes a screenshot (``test-artifacts/screenshots/<name>.png``, kept by CI)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {
        **http.server.SimpleHTTPRequestHandler.extensions_map,
        ".js": "text/javascript",
        ".mjs": "text/javascript",
        ".html": "text/html; charset=utf-8",
    }

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class StaticServer:
    """An HTTP server on ``127.0.0.1:0`` serving a folder; HTTPS when given a certificate.

    Plain ``http://127.0.0.1`` is already a secure context for Chromium (WebCodecs,
    getUserMedia). ``for_browser_files`` mounts ``/static`` (the browser participant's files)
    and ``/pages`` (the test pages in ``tests/browser/pages``) into ``root``.
    """

    def __init__(self, root: Path, certificate: tuple[Path, Path] | None = None) -> None:
        self.root = root
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.scheme = "http"
        if certificate is not None:
            tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            tls.load_cert_chain(*certificate)
            self.httpd.socket = tls.wrap_socket(self.httpd.socket, server_side=True)
            self.scheme = "https"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @classmethod
    def for_browser_files(
        cls, root: Path, certificate: tuple[Path, Path] | None = None
    ) -> StaticServer:
        root.mkdir(parents=True, exist_ok=True)
        (root / "static").symlink_to(STATIC_ROOT, target_is_directory=True)
        (root / "pages").symlink_to(PAGES_ROOT, target_is_directory=True)
        return cls(root, certificate)

    @property
    def url(self) -> str:
        port = self.httpd.server_address[1]
        return f"{self.scheme}://127.0.0.1:{port}"

    def __enter__(self) -> StaticServer:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def rms(samples: Sequence[float] | np.ndarray) -> float:
    data = np.asarray(samples, dtype=np.float64)
    return float(np.sqrt(np.mean(data * data))) if data.size else 0.0


def strongest_frequencies(
    samples: Sequence[float] | np.ndarray, sample_rate: float, count: int = 1
) -> list[float]:
    """The ``count`` strongest spectral peaks of a signal, in Hz, strongest first.

    Hann window, zero-padding and parabolic interpolation give a fraction of a hertz on a
    second of audio; peaks closer than 20 Hz to a stronger one count as the same peak.
    """
    data = np.asarray(samples, dtype=np.float64)
    data = data - data.mean()
    size = 1 << int(np.ceil(np.log2(len(data) * 4)))
    spectrum = np.abs(np.fft.rfft(data * np.hanning(len(data)), size))
    bin_hz = sample_rate / size
    order = np.argsort(spectrum)[::-1]
    peaks: list[float] = []
    for index in order:
        if len(peaks) == count:
            break
        if index == 0 or index >= len(spectrum) - 1:
            continue
        left, centre, right = np.log(spectrum[index - 1 : index + 2] + 1e-12)
        offset = 0.5 * (left - right) / (left - 2 * centre + right)
        frequency = float((index + offset) * bin_hz)
        if all(abs(frequency - peak) > 20 for peak in peaks):
            peaks.append(frequency)
    return peaks
