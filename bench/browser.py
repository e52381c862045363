"""Browser participant benchmark: mouth-to-ear audio latency, time to first audio, server CPU.

Real Chromium (Debian's ``/usr/bin/chromium``, headless, driven by Playwright) on loopback.
The speaker's fake microphone plays a 440 Hz tone with a 5 ms full-scale 4 kHz burst once a
second (the marker); the bench finds each burst again where the listener's page plays it.

- **mouth**: when the captured block holding the burst was handed over by the capture device,
  by the block's capture timestamp (``AudioData.timestamp``, on ``performance.now()``'s
  clock), less the burst's place in the block. The blocks are read where the speaker's page
  gives them to its Opus encoder (a wrapper around ``AudioEncoder.prototype.encode``,
  installed by a Playwright init script). Chromium's fake capture device delivers 10 ms
  blocks; the time a real microphone's driver buffers before that is not seen.
- **ear**: when the listener's sound card plays the burst: a recorder worklet on the
  playout's output finds the burst's sample, and ``AudioContext.getOutputTimestamp()`` turns
  its context time into the time the output device presents it. That includes the output
  path's own latency (``baseLatency + outputLatency``: 40 ms on headless Chromium's fake
  output device here), which is also printed, so the figure without it can be read off.
Both times are wall-clock milliseconds (``performance.timeOrigin + performance.now()``) of the
same machine. The recorder is loaded from a ``blob:`` URL, so the bench's Chromium contexts
bypass the room's Content-Security-Policy (``bypass_csp``); nothing else is changed.

Modes:

``room`` (default): the full system, as in ``tests/browser/test_room_e2e.py``: a Center,
the Controller and a two-server tree (``main`` and its child ``child-a``) as processes. Olga
(moderator) opens the room on ``main``; Mike opens it on ``child-a`` and Olga gives him the
floor, so his tone crosses the tree to her. Then Pia clicks "Join in browser" on the event
page while Mike speaks (server selection picks her server): **time to first audio** is from
that click to the first audible sample her page plays. Latency is measured for every
listener for ``--seconds``. **CPU of a live server per browser participant**: each server
process's CPU (``/proc/<pid>/stat``) while idle with the event ready, and during the
measurement; the difference divided by the browsers on it (and over both servers).

``page``: one page, no server: fake microphone -> ``startMicrophone`` -> Opus packets ->
``createPlayout``, the media path alone (capture, encode, decode, jitter buffer, playout). Its
output says so: **the network path is not included**.

    .venv/bin/python bench/browser.py                 # room mode, 20 s of measurement
    .venv/bin/python bench/browser.py --mode page --seconds 30
    .venv/bin/python bench/browser.py --json

Targets from issue 11: p99 mouth-to-ear under 150 ms; first audio under 2 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from playwright.sync_api import BrowserContext, Page, Playwright, sync_playwright  # noqa: E402

from tests.browser.browser_support import (  # noqa: E402
    CHROMIUM,
    StaticServer,
    chromium_args,
    make_nss_home,
    missing_tools,
    write_tone_wav,
)

TARGET_P99_MS = 150.0
TARGET_FIRST_AUDIO_S = 2.0
MARKER_EVERY_S = 1.0
TONE_HZ = 440.0

# The burst's first differences reach ~0.6 after Opus; a 440 Hz tone at 0.5 stays under 0.03.
INSTRUMENT = r"""
(() => {
  const THRESHOLD = 0.25;
  const HOLD_MS = 500;
  const bench = window.townhallBench = {mouth: [], ear: [], firstAudio: null, attached: null,
                                        outputLatencyMs: null, errors: []};
  const wall = () => performance.timeOrigin + performance.now();

  if (window.AudioEncoder) {
    const encode = AudioEncoder.prototype.encode;
    let previous = 0;
    let last = -Infinity;
    AudioEncoder.prototype.encode = function (data) {
      try {
        // Chromium stamps a captured block on performance.now()'s clock when the device hands
        // it over: the burst left the "mouth" that long before, less its place in the block.
        const blockEnd = performance.timeOrigin + data.timestamp / 1000;
        const frames = data.numberOfFrames;
        const samples = new Float32Array(frames);
        data.copyTo(samples, {planeIndex: 0, format: 'f32-planar'});
        for (let i = 0; i < frames; i++) {
          const step = Math.abs(samples[i] - previous);
          previous = samples[i];
          if (step > THRESHOLD) {
            const at = blockEnd - (frames - i) * 1000 / data.sampleRate;
            if (at - last > HOLD_MS) bench.mouth.push(at);
            last = at;
          }
        }
      } catch (error) {
        bench.errors.push(String(error));
      }
      return encode.call(this, data);
    };
  }

  const RECORDER = `
    registerProcessor('townhall-bench-ear', class extends AudioWorkletProcessor {
      constructor() { super(); this.previous = 0; this.last = -1e9; this.heard = false; }
      process(inputs) {
        const x = inputs[0] && inputs[0][0];
        if (!x) return true;
        let energy = 0;
        for (let i = 0; i < x.length; i++) {
          const step = Math.abs(x[i] - this.previous);
          this.previous = x[i];
          energy += x[i] * x[i];
          if (step > ${THRESHOLD}) {
            const t = currentTime + i / sampleRate;
            if (t - this.last > ${HOLD_MS / 1000}) this.port.postMessage({type: 'click', t});
            this.last = t;
          }
        }
        if (!this.heard && energy / x.length > 1e-4) {
          this.heard = true;
          this.port.postMessage({type: 'first', t: currentTime});
        }
        return true;
      }
    });`;

  if (window.AudioWorkletNode) {
    const Original = AudioWorkletNode;
    const attach = async (context, node) => {
      try {
        const url = URL.createObjectURL(new Blob([RECORDER], {type: 'text/javascript'}));
        await context.audioWorklet.addModule(url);
        const ear = new Original(context, 'townhall-bench-ear',
          {numberOfInputs: 1, numberOfOutputs: 1, outputChannelCount: [1]});
        const silent = context.createGain();
        silent.gain.value = 0;
        node.connect(ear);
        ear.connect(silent);
        silent.connect(context.destination);
        const toWall = (t) => {
          const stamp = context.getOutputTimestamp();
          if (stamp.performanceTime > 0) {
            return performance.timeOrigin + stamp.performanceTime + (t - stamp.contextTime) * 1000;
          }
          return wall() + (t - context.currentTime) * 1000;
        };
        ear.port.onmessage = (event) => {
          const seconds = (context.baseLatency || 0) + (context.outputLatency || 0);
          bench.outputLatencyMs = 1000 * seconds;
          if (event.data.type === 'click') bench.ear.push(toWall(event.data.t));
          else if (bench.firstAudio === null) bench.firstAudio = toWall(event.data.t);
        };
        bench.attached = wall();
      } catch (error) {
        bench.errors.push(String(error));
      }
    };
    window.AudioWorkletNode = class extends Original {
      constructor(context, name, options) {
        super(context, name, options);
        if (name === 'townhall-playout') attach(context, this);
      }
    };
  }
})();
"""


# -- measuring ------------------------------------------------------------------------------------


def latencies(mouth: Sequence[float], ear: Sequence[float]) -> list[float]:
    """Pair each burst heard with the last one sent before it (bursts are a second apart)."""
    sent = np.sort(np.asarray(mouth, dtype=np.float64))
    found: list[float] = []
    for heard in ear:
        index = int(np.searchsorted(sent, heard)) - 1
        if index >= 0 and heard - sent[index] < MARKER_EVERY_S * 1000 * 0.9:
            found.append(float(heard - sent[index]))
    return found


def summary(values: Sequence[float]) -> dict[str, float | int | None]:
    if not values:
        return {"count": 0, "p50": None, "p99": None, "min": None, "max": None}
    data = np.asarray(values)
    return {
        "count": len(values),
        "p50": round(float(np.percentile(data, 50)), 1),
        "p99": round(float(np.percentile(data, 99)), 1),
        "min": round(float(data.min()), 1),
        "max": round(float(data.max()), 1),
    }


def bench_state(page: Page) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate("() => window.townhallBench")
    return state


def launch(
    playwright: Playwright,
    workdir: Path,
    audio_file: Path | None = None,
    ca_files: Sequence[Path] = (),
) -> BrowserContext:
    """Chromium as the tests start it, plus the measurement init script."""
    home = make_nss_home(workdir / "home", ca_files)
    (workdir / "profile").mkdir(parents=True, exist_ok=True)
    env: dict[str, str | float | bool] = {
        key: value for key, value in os.environ.items() if key != "DISPLAY"
    }
    env["HOME"] = str(home)
    context = playwright.chromium.launch_persistent_context(
        str(workdir / "profile"),
        executable_path=str(CHROMIUM),
        headless=True,
        args=chromium_args(audio_file),
        env=env,
        bypass_csp=True,
    )
    context.add_init_script(INSTRUMENT)
    return context


def wait_for(check: Any, what: str, timeout: float = 60, *pages: Page) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            from tests.browser.room_support import describe

            shown = "\n".join(describe(page) for page in pages)
            raise RuntimeError(f"gave up waiting for {what}\n{shown}")
        time.sleep(0.1)


class ProcessCPU:
    """CPU seconds used by a process, from /proc/<pid>/stat (user + system)."""

    TICKS = os.sysconf("SC_CLK_TCK")

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def seconds(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / self.TICKS


def cpu_percent(processes: dict[str, ProcessCPU], seconds: float) -> dict[str, float]:
    before = {name: cpu.seconds() for name, cpu in processes.items()}
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    return {
        name: round(100 * (cpu.seconds() - before[name]) / elapsed, 2)
        for name, cpu in processes.items()
    }


# -- page mode ------------------------------------------------------------------------------------


def run_page(playwright: Playwright, workdir: Path, seconds: float) -> dict[str, Any]:
    tone = write_tone_wav(workdir / "marker.wav", TONE_HZ, 10.0, click_every=MARKER_EVERY_S)
    with StaticServer.for_browser_files(workdir / "www") as server:
        context = launch(playwright, workdir / "chromium", tone)
        try:
            page = context.new_page()
            page.goto(server.url + "/pages/media.html")
            page.evaluate("async () => (await import('/pages/media-lab.js')).startAudioLoop({})")
            wait_for(lambda: len(bench_state(page)["ear"]) >= 2, "the first markers", 30)
            time.sleep(seconds)
            state = bench_state(page)
            stats = page.evaluate("() => townhallTest.playout.stats()")
        finally:
            context.close()
    return {
        "mode": "page",
        "note": "one page: capture, encode, decode, playout; the network path is NOT included",
        "latency_ms": summary(latencies(state["mouth"], state["ear"])),
        "output_latency_ms": state["outputLatencyMs"],
        "playout": stats["streams"],
        "errors": state["errors"],
    }


# -- room mode ------------------------------------------------------------------------------------


@contextlib.contextmanager
def running_system(workdir: Path) -> Iterator[tuple[Any, Any]]:
    from tests.browser.room_support import prepare_two_servers, run_two_servers
    from tests.support import make_settings, start_center

    settings = make_settings(workdir / "data", f"sqlite:///{workdir / 'townhall.db'}")
    server, center = start_center(settings)
    with server as url:
        center.url = url
        center.add_user("ada", role="admin")
        center.add_user("olga", role="organizer")
        center.add_user("mike")
        center.add_user("pia")
        runner = run_two_servers(prepare_two_servers(center, settings.data))
        system = next(runner)
        try:
            yield center, system
        finally:
            with contextlib.suppress(StopIteration):
                next(runner)


def run_room(playwright: Playwright, workdir: Path, seconds: float) -> dict[str, Any]:
    from tests.browser.room_support import dev_ca_file, record_console, room_state, sign_in
    from tests.browser.test_room_routes import schedule_now

    quiet = write_tone_wav(workdir / "quiet.wav", TONE_HZ, 1.0, amplitude=0.0)
    marker = write_tone_wav(workdir / "marker.wav", TONE_HZ, 10.0, click_every=MARKER_EVERY_S)
    with running_system(workdir) as (center, system):
        event_id = schedule_now(center)
        with center.client("olga") as api:
            wait_for(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 90)
        servers = {name: ProcessCPU(system.processes[name].pid) for name in ("main", "child-a")}
        idle = cpu_percent(servers, 5.0)
        ca = [dev_ca_file(center)]
        contexts: list[BrowserContext] = []
        try:
            olga_context = launch(playwright, workdir / "olga", quiet, ca)
            contexts.append(olga_context)
            olga = record_console(olga_context.new_page())
            sign_in(olga, center, "olga", "/events")
            olga.goto(f"{center.url}/events/{event_id}/room?server=main")
            wait_for(lambda: joined(olga), "olga in the room", 60, olga)

            mike_context = launch(playwright, workdir / "mike", marker, ca)
            contexts.append(mike_context)
            mike = record_console(mike_context.new_page())
            sign_in(mike, center, "mike", "/events")
            mike.goto(f"{center.url}/events/{event_id}/room?server=child-a")
            wait_for(lambda: joined(mike), "mike in the room", 60, mike)
            wait_for(lambda: "mike" in roster(olga), "mike in olga's roster")
            olga.select_option("#target", "mike")
            olga.click("#give-floor")
            wait_for(lambda: sending(mike), "mike's microphone stream", 60, mike, olga)

            pia_context = launch(playwright, workdir / "pia", quiet, ca)
            contexts.append(pia_context)
            pia = record_console(pia_context.new_page())
            sign_in(pia, center, "pia", f"/events/{event_id}")
            clicked = time.time() * 1000
            pia.click("text=Join in browser")
            wait_for(
                lambda: bench_state(pia)["firstAudio"] is not None, "pia's first audio", 60, pia
            )
            first_audio_ms = bench_state(pia)["firstAudio"] - clicked

            listeners = {"olga": olga, "pia": pia}
            start = {name: len(bench_state(page)["ear"]) for name, page in listeners.items()}
            mouth_start = len(bench_state(mike)["mouth"])
            busy = cpu_percent(servers, seconds)
            mouth = bench_state(mike)["mouth"][max(0, mouth_start - 2) :]
            results: dict[str, Any] = {}
            on_server: dict[str, list[str]] = {"main": [], "child-a": []}
            for name, page in listeners.items():
                state = bench_state(page)
                server = room_state(page)["server"]
                on_server.setdefault(server, []).append(name)
                results[name] = {
                    "server": server,
                    "latency_ms": summary(latencies(mouth, state["ear"][start[name] :])),
                    "output_latency_ms": state["outputLatencyMs"],
                    "playout": (room_state(page)["playout"] or {}).get("streams", []),
                    "errors": state["errors"],
                }
            on_server.setdefault(room_state(mike)["server"], []).append("mike (speaker)")
            every = [
                value
                for name, page in listeners.items()
                for value in latencies(mouth, bench_state(page)["ear"][start[name] :])
            ]
        finally:
            for context in contexts:
                context.close()
    cpu = {
        name: {
            "idle_percent": idle[name],
            "busy_percent": busy[name],
            "browsers": on_server.get(name, []),
            "per_browser_percent": (
                round((busy[name] - idle[name]) / len(on_server[name]), 2)
                if on_server.get(name)
                else None
            ),
        }
        for name in servers
    }
    return {
        "mode": "room",
        "note": "mike (speaker, on child-a) -> live servers -> each listener's playout",
        "cpu_total": {
            "busy_minus_idle_percent": round(sum(busy.values()) - sum(idle.values()), 2),
            "browsers": sum(len(names) for names in on_server.values()),
        },
        "latency_ms": summary(every),
        "listeners": results,
        "first_audio_ms": round(first_audio_ms, 1),
        "first_audio_server": results["pia"]["server"],
        "cpu": cpu,
    }


def joined(page: Page) -> bool:
    return bool(page.evaluate("() => Boolean(window.townhallRoom?.snapshot().server)"))


def roster(page: Page) -> set[str]:
    state = page.evaluate("() => window.townhallRoom.snapshot().roster")
    return {member["name"] for member in state}


def sending(page: Page) -> bool:
    state = page.evaluate("() => window.townhallRoom.snapshot().sending")
    return any(s["kind"] == "microphone" and s["streamId"] is not None for s in state)


# -- output ---------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def playout_line(stream: dict[str, Any]) -> str:
    """The jitter buffer's state at the end, to read the latency figures against."""
    return (
        f"target {stream.get('targetMs', 0):.0f} ms, "
        f"buffered {stream.get('bufferedMs', 0):.0f} ms, "
        f"jitter {stream.get('jitterMs', 0):.0f} ms, {stream.get('underruns', 0)} underruns, "
        f"{stream.get('framesConcealed', 0)} frames concealed, {stream.get('lost', 0)} lost"
    )


def print_report(result: dict[str, Any]) -> None:
    print(f"Browser media benchmark ({result['mode']} mode): {result['note']}")
    latency = result["latency_ms"]
    p99 = latency["p99"]
    verdict = "met" if p99 is not None and p99 < TARGET_P99_MS else "NOT met"
    print(
        f"mouth-to-ear latency: p50 {latency['p50']} ms, p99 {p99} ms "
        f"(min {latency['min']}, max {latency['max']}, {latency['count']} markers); "
        f"target p99 < {TARGET_P99_MS:g} ms: {verdict}"
    )
    if result["mode"] == "page":
        print(f"  of which the output device (AudioContext): {result['output_latency_ms']:.0f} ms")
        for stream in result["playout"]:
            print(f"  playout: {playout_line(stream)}")
    for name, listener in result.get("listeners", {}).items():
        lat = listener["latency_ms"]
        print(
            f"  {name} on {listener['server']}: p50 {lat['p50']} ms, p99 {lat['p99']} ms "
            f"({lat['count']} markers), of which the output device "
            f"{listener['output_latency_ms'] or 0:.0f} ms"
        )
        for stream in listener["playout"]:
            print(f"    playout: {playout_line(stream)}")
    if "first_audio_ms" in result:
        first = result["first_audio_ms"] / 1000
        verdict = "met" if first < TARGET_FIRST_AUDIO_S else "NOT met"
        print(
            f"'Join in browser' to first audio heard: {first:.2f} s "
            f"(joined {result['first_audio_server']}); "
            f"target < {TARGET_FIRST_AUDIO_S:g} s: {verdict}"
        )
    for name, cpu in result.get("cpu", {}).items():
        browsers = ", ".join(cpu["browsers"]) or "no browsers"
        print(
            f"live server {name}: {cpu['busy_percent']}% CPU with {browsers} "
            f"(idle {cpu['idle_percent']}%); per browser participant: "
            f"{cpu['per_browser_percent']}%"
        )
    if "cpu_total" in result:
        total = result["cpu_total"]
        print(
            f"both live servers: {total['busy_minus_idle_percent']}% CPU above idle for "
            f"{total['browsers']} browser participants: "
            f"{total['busy_minus_idle_percent'] / max(1, total['browsers']):.2f}% each"
        )
    print(f"machine: {result['machine']}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mode", choices=("room", "page"), default="room")
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement time")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args(argv)
    missing = missing_tools()
    if missing:
        print("needs " + ", ".join(missing), file=sys.stderr)
        return 2
    with (
        tempfile.TemporaryDirectory(prefix="townhall-bench-browser-") as folder,
        sync_playwright() as playwright,
    ):
        workdir = Path(folder)
        run = run_page if args.mode == "page" else run_room
        result = run(playwright, workdir, args.seconds)
    result["machine"] = machine()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
