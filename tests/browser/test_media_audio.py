"""Audio in real Chromium, no server: fake microphone -> startMicrophone -> Opus -> createPlayout.

The fake microphone plays a tone file the test writes; what the playout plays is read from an
AnalyserNode on its output and measured here (frequency, loudness). Page helpers are in
``pages/media-lab.js``.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.browser_support import StaticServer, rms, strongest_frequencies
from tests.browser.conftest import OpenBrowser, ToneFile

WAIT_MS = 30_000


def start_loop(
    open_browser: OpenBrowser,
    tone_file: ToneFile,
    static_server: StaticServer,
    frequency: float = 440,
    **options: Any,
) -> Page:
    page = open_browser(audio_file=tone_file(frequency)).new_page()
    page.goto(static_server.url + "/pages/media.html")
    page.evaluate(
        """async (options) => {
            window.lab = await import('/pages/media-lab.js');
            await window.lab.startAudioLoop(options);
        }""",
        options,
    )
    return page


def wait_for_frames(page: Page, frames: int, stream_id: int = 1) -> dict[str, Any]:
    """Wait until the playout has received ``frames`` frames of a stream; its stats then."""
    page.wait_for_function(
        """([id, frames]) => townhallTest.playout.stats().streams
            .some((s) => s.id === id && s.framesReceived >= frames)""",
        arg=[stream_id, frames],
        timeout=WAIT_MS,
    )
    stats: dict[str, Any] = page.evaluate("() => townhallTest.playout.stats()")
    return next(s for s in stats["streams"] if s["id"] == stream_id)


def played(page: Page) -> tuple[list[float], float]:
    output = page.evaluate("() => window.lab.recentOutput()")
    return output["samples"], output["sampleRate"]


def quietest_steady_5ms(page: Page, stream_id: int = 1, windows: int = 6) -> float:
    """The loudest, over a few windows in which the stream never ran short, of each window's
    quietest 5 ms (``quietest_5ms``): near 0 only when every such window had a dropout.

    A page stalled by a busy machine gets its audio late: the playout conceals the gap, fading
    out after 20 ms, and falls silent if the stall outlasts 60 ms. That is not what a dropout
    check is about, so a window with an underrun or a rebuffer is skipped (the counts are read
    a moment after the window, so that the worklet's report of its end has arrived). A capture
    or render glitch of that busy machine can still leave one window with a dropout, so the
    best of several windows is taken: what the checks are about (a lost packet, or a drift
    correction, going quiet) happens several times a second and so spoils every window.
    """

    def shortfalls() -> tuple[int, int]:
        streams = page.evaluate("() => townhallTest.playout.stats().streams")
        stream = next(s for s in streams if s["id"] == stream_id)
        return int(stream["underruns"]), int(stream["rebuffers"])

    best = None
    for _ in range(3 * windows):
        before = shortfalls()
        page.wait_for_timeout(750)
        samples, _rate = played(page)
        page.wait_for_timeout(200)
        if shortfalls() != before:
            continue
        quietest = quietest_5ms(samples)
        best = quietest if best is None else max(best, quietest)
        windows -= 1
        if windows == 0 or best > 0.15:
            break
    if best is None:
        raise AssertionError("the playout ran short in every window")
    return best


def least_excess_ms(page: Page, stream_id: int = 1) -> float:
    """How far above its target the stream's buffer is, at the least of five looks.

    A burst after a stall of the busy machine fills the buffer for a moment, and the playout
    trims it within a second; a buffer that keeps growing is above target at every look.
    """
    excess = []
    for _ in range(5):
        page.wait_for_timeout(200)
        streams = page.evaluate("() => townhallTest.playout.stats().streams")
        stream = next(s for s in streams if s["id"] == stream_id)
        excess.append(stream["bufferedMs"] - stream["targetMs"])
    return min(excess)


def quietest_5ms(samples: list[float]) -> float:
    """The lowest loudness (RMS) of any 5 ms of a 48 kHz signal: near 0 where audio dropped out."""
    return min(rms(samples[i : i + 240]) for i in range(0, len(samples) - 240, 120))


def test_the_microphones_tone_is_played_out_at_its_frequency(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    # Default capture settings (echo cancellation, noise suppression, gain control), as in a room.
    page = start_loop(open_browser, tone_file, static_server, 440)
    stream = wait_for_frames(page, 100)
    samples, rate = played(page)
    assert rms(samples) > 0.01, "the playout is silent"
    [frequency] = strongest_frequencies(samples, rate)
    assert frequency == pytest.approx(440, abs=5)
    assert stream["decodeErrors"] == 0
    assert page.evaluate("() => townhallTest.mic.stats().codec") == "opus"


def test_playout_stays_low_latency_and_reports_levels(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, tone_file, static_server, 440, processing=False)
    stream = wait_for_frames(page, 250)
    # Loopback in one page has a few ms of jitter: the buffer keeps to its 40-60 ms target.
    assert stream["targetMs"] >= 40
    assert least_excess_ms(page) < 30, "the buffer holds far more than its target"
    levels = dict(page.evaluate("() => [...townhallTest.playout.levels()]"))
    assert levels[1] > 0.3, "a loud tone shows as loud"
    assert page.evaluate("() => townhallTest.mic.level()") > 0.3


def test_every_tenth_packet_lost_is_concealed_and_the_tone_goes_on(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, tone_file, static_server, 440, dropEvery=10, processing=False)
    stream = wait_for_frames(page, 150)
    assert stream["lost"] >= 10
    assert stream["framesConcealed"] >= stream["lost"] - 2
    samples, rate = played(page)
    # The lost 20 ms are filled with the tone's last period: no gap, no drop in loudness.
    assert rms(samples) > 0.25
    assert quietest_steady_5ms(page) > 0.15, "a dropout: some 5 ms of the tone went quiet"
    [frequency] = strongest_frequencies(samples, rate)
    assert frequency == pytest.approx(440, abs=5)


@pytest.mark.parametrize("clock", ["fast", "slow"])
def test_a_sender_whose_clock_drifts_does_not_make_latency_grow_or_starve(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer, clock: str
) -> None:
    # 4 % off: 20 s of it would be 800 ms more (or less) audio than the page can play.
    drift = {"fastEvery": 25} if clock == "fast" else {"slowEvery": 25}
    page = start_loop(open_browser, tone_file, static_server, 440, processing=False, **drift)
    stream = wait_for_frames(page, 500)
    # The playout sees the drift (about 40,000 ppm either way) and follows it.
    if clock == "fast":
        assert stream["driftPpm"] < -20_000
        assert stream["samplesDropped"] > 0.03 * 500 * 960
    else:
        assert stream["driftPpm"] > 20_000
        assert stream["samplesInserted"] > 0
    assert least_excess_ms(page) < 30, "the buffer holds far more than its target"
    samples, rate = played(page)
    assert rms(samples) > 0.25
    # Whole pitch periods are dropped or repeated: the tone keeps its pitch, with no dropout.
    assert strongest_frequencies(samples, rate) == [pytest.approx(440, abs=5)]
    assert quietest_steady_5ms(page) > 0.15


def test_two_speakers_at_once_are_mixed(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, tone_file, static_server, 440, secondTone=660, processing=False)
    wait_for_frames(page, 100, stream_id=1)
    wait_for_frames(page, 100, stream_id=2)
    samples, rate = played(page)
    assert sorted(strongest_frequencies(samples, rate, 2)) == [
        pytest.approx(440, abs=5),
        pytest.approx(660, abs=5),
    ]
    levels = dict(page.evaluate("() => [...townhallTest.playout.levels()]"))
    assert levels[1] > 0.1 and levels[2] > 0.1


def test_a_muted_microphone_sends_nothing_and_the_speaker_falls_silent(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, tone_file, static_server, 440, processing=False)
    wait_for_frames(page, 50)
    sent_at_mute = page.evaluate(
        "() => { townhallTest.mic.setMuted(true); return townhallTest.sent; }"
    )
    page.wait_for_function(
        "() => (townhallTest.playout.levels().get(1) ?? 0) < 0.05", timeout=WAIT_MS
    )
    # At most what was already inside the encoder when muting comes out afterwards: its queue
    # (8 blocks of 10 ms, 4 packets) and the packet it was filling.
    assert page.evaluate("() => townhallTest.sent") - sent_at_mute <= 5
    assert page.evaluate("() => townhallTest.mic.level()") == 0
    assert rms(played(page)[0][-2400:]) < 0.01, "the last 50 ms played are not silent"

    page.evaluate("() => townhallTest.mic.setMuted(false)")
    page.wait_for_function(
        "() => (townhallTest.playout.levels().get(1) ?? 0) > 0.5", timeout=WAIT_MS
    )


def test_bad_packets_are_counted_and_dropped_without_disturbing_other_streams(
    open_browser: OpenBrowser, tone_file: ToneFile, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, tone_file, static_server, 440, processing=False)
    wait_for_frames(page, 50)
    refused = page.evaluate(
        """() => {
            const playout = townhallTest.playout;
            playout.push(7, 1, 0, new Uint8Array(0));                // empty
            playout.push(7, 2, 0, new Uint8Array(9000));             // over the wire's limit
            for (let seq = 3; seq < 40; seq++) {                      // not Opus at all
                playout.push(7, seq, 0, crypto.getRandomValues(new Uint8Array(200)));
            }
            const errors = [];
            for (const args of [[-1, 1, 0, new Uint8Array(3)], [7, 2 ** 32, 0, new Uint8Array(3)],
                                [7, 1, 0, 'not bytes']]) {
                try { playout.push(...args); } catch (error) { errors.push(error.name); }
            }
            return errors;
        }"""
    )
    assert refused == ["TypeError", "TypeError", "TypeError"]
    stream = wait_for_frames(page, 150)
    garbage = next(
        s for s in page.evaluate("() => townhallTest.playout.stats().streams") if s["id"] == 7
    )
    assert garbage["malformed"] == 2
    samples, rate = played(page)
    assert rms(samples) > 0.25
    assert strongest_frequencies(samples, rate) == [pytest.approx(440, abs=5)]
    assert stream["decodeErrors"] == 0
