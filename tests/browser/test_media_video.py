"""Video in real Chromium, no server: startVideo (camera or screen) -> createVideoView -> canvas.

The camera is Chromium's fake camera (a moving test pattern). Headless Chromium with the fake
media flags answers getDisplayMedia with a fake screen, so the screen test uses the real
getDisplayMedia path; a second test sends a canvas's captureStream() as the screen, the way a
page shares a whiteboard. Page helpers are in ``pages/media-lab.js``.
"""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page

from tests.browser.browser_support import StaticServer, screenshot_path
from tests.browser.conftest import OpenBrowser

WAIT_MS = 30_000


def start_loop(open_browser: OpenBrowser, static_server: StaticServer, **options: Any) -> Page:
    page = open_browser().new_page()
    page.goto(static_server.url + "/pages/media.html")
    codec = page.evaluate(
        """async (options) => {
            window.lab = await import('/pages/media-lab.js');
            return await window.lab.startVideoLoop(options);
        }""",
        options,
    )
    assert codec in ("vp8", "h264")
    return page


def wait_for_decoded(page: Page, frames: int) -> dict[str, Any]:
    page.wait_for_function(
        "(frames) => townhallTest.view && townhallTest.view.framesDecoded >= frames",
        arg=frames,
        timeout=WAIT_MS,
    )
    stats: dict[str, Any] = page.evaluate("() => townhallTest.view.stats()")
    return stats


def test_the_camera_is_encoded_decoded_and_drawn(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, static_server, source="camera")
    stats = wait_for_decoded(page, 10)
    assert stats["decodeErrors"] == 0
    assert (stats["width"], stats["height"]) == (640, 480)
    canvas = page.evaluate("() => window.lab.canvasVariety()")
    assert (canvas["width"], canvas["height"]) == (640, 480)
    assert canvas["colours"] > 3, "the canvas is blank"
    assert page.evaluate("() => townhallTest.sender.codec") == "vp8"
    page.screenshot(path=str(screenshot_path("media-camera-view")))


def test_a_view_that_starts_mid_stream_asks_for_a_key_frame_and_gets_a_picture(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    # No periodic key frame for a minute: only the view's request can bring a picture.
    page = start_loop(
        open_browser, static_server, source="camera", skipFirst=10, keyFrameSeconds=60
    )
    stats = wait_for_decoded(page, 5)
    assert stats["keyFramesAsked"] >= 1
    assert page.evaluate("() => townhallTest.keyFramesAsked") >= 1
    # The encoder's own first key frame went to nobody; the next one was asked for.
    assert page.evaluate("() => townhallTest.keyFramesSent") >= 2
    assert page.evaluate("() => window.lab.canvasVariety().colours") > 3


def test_a_gap_in_the_frames_stops_decoding_until_a_requested_key_frame(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = start_loop(
        open_browser, static_server, source="camera", keyFrameSeconds=60, dropAfter=15, dropCount=3
    )
    # Frames after the gap are decoded again (the next periodic key frame is a minute away).
    stats = wait_for_decoded(page, 25)
    # One request at the start, one after the gap; deltas after the gap were not decoded.
    assert stats["keyFramesAsked"] >= 2
    # The encoder's first frame, the one asked for at the start, the one asked after the gap.
    assert page.evaluate("() => townhallTest.keyFramesSent") >= 3
    assert stats["framesSkipped"] >= 1
    assert stats["decodeErrors"] == 0


def test_h264_is_sent_and_shown_where_vp8_cannot_be_encoded(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    # This Chromium encodes VP8; a browser that cannot is played by offering H.264 only.
    page = start_loop(open_browser, static_server, source="camera", codecs=["h264"], skipFirst=5)
    stats = wait_for_decoded(page, 5)
    assert stats["codec"] == "h264"
    assert stats["decodeErrors"] == 0
    assert page.evaluate("() => window.lab.canvasVariety().colours") > 3


def test_a_shared_screen_from_get_display_media_is_shown(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, static_server, source="screen")
    stats = wait_for_decoded(page, 5)
    assert stats["decodeErrors"] == 0
    assert stats["width"] >= 640
    assert page.evaluate("() => window.lab.canvasVariety().colours") > 3
    page.screenshot(path=str(screenshot_path("media-screen-view")))


def test_a_canvas_shared_as_the_screen_is_shown(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, static_server, source="screen", canvasTrack=True)
    stats = wait_for_decoded(page, 5)
    assert (stats["width"], stats["height"]) == (640, 360)
    assert page.evaluate("() => window.lab.canvasVariety().colours") > 2


def test_bad_frames_are_counted_and_the_view_asks_for_a_fresh_key_frame(
    open_browser: OpenBrowser, static_server: StaticServer
) -> None:
    page = start_loop(open_browser, static_server, source="camera")
    wait_for_decoded(page, 3)
    page.evaluate(
        """() => {
            const view = townhallTest.view;
            view.push(1e9, 0, false, new Uint8Array(0));
            view.push(1e9 + 1, 0, true, new Uint8Array(300 * 1024));
            view.push(-4, 0, true, new Uint8Array(10));
            view.push(1e9 + 2, 0, true, 'not bytes');
        }"""
    )
    stats = page.evaluate("() => townhallTest.view.stats()")
    assert stats["malformed"] == 4
    decoded = stats["framesDecoded"]
    wait_for_decoded(page, decoded + 5)
