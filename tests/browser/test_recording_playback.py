"""An H.264 part plays in the browser from the Center: Chromium's ``<video>`` on the event page.

A recorder's MP4 part (written here by ``Mp4Writer``: three seconds of a tone
and of libx264 pictures, as an H.264 presenter's are copied) lies in the
event's folder; Mike signs in and opens the event page. What a viewer sees:
the page's player loads it (``video/mp4``, with ranges), knows it lasts three
seconds and is 320 × 240, shows pictures while it plays, and seeks near its end.
"""

from __future__ import annotations

from typing import Any

from tests.browser.browser_support import screenshot_path
from tests.browser.conftest import OpenBrowser
from tests.browser.room_support import dev_ca_file, record_console, sign_in
from tests.e2e.e2e_support import schedule_recorded
from tests.recording.test_mp4 import h264_frames
from tests.recording.test_writing import tone
from tests.support import Center
from townhall.recording.container import Mp4Writer, h264_start

PLAY = """async () => {
  // A bound, not a pace: a player that never gets there fails the test instead of hanging it.
  const within = (promise, what) => Promise.race([promise, new Promise((_, fail) =>
    setTimeout(() => fail(new Error('no ' + what + ' in 30 s')), 30000))]);
  const video = document.querySelector('video.recording');
  if (video.readyState < 2) {
    await within(new Promise((ok, fail) => {
      video.addEventListener('loadeddata', ok, {once: true});
      video.addEventListener('error', () => fail(new Error('the player refused it')), {once: true});
    }), 'loadeddata');
  }
  let shown = 0;
  const count = () => { shown += 1; video.requestVideoFrameCallback(count); };
  video.requestVideoFrameCallback(count);
  video.muted = true;
  await video.play();
  await within(new Promise(ok => video.addEventListener('ended', ok, {once: true})), 'end');
  video.currentTime = 2.5;
  await within(new Promise(ok => video.addEventListener('seeked', ok, {once: true})), 'seek');
  return {duration: video.duration, width: video.videoWidth, height: video.videoHeight,
          shown, at: video.currentTime, source: video.currentSrc};
}"""


def test_an_mp4_part_plays_on_the_event_page(center: Center, open_browser: OpenBrowser) -> None:
    event_id = schedule_recorded(center, "Recorded in H.264")
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True)
    frames = h264_frames(90)
    start = h264_start(frames[0][0])
    assert start is not None
    writer = Mp4Writer(folder / "recording.mp4", start)
    for index, (payload, key) in enumerate(frames):
        writer.video(round(index * 1000 / 30), payload, key)
    writer.audio(tone(3.0, 440))
    writer.close()
    (folder / "recording.json").write_text('{"seconds": 3.0, "complete": true, "container": "mp4"}')

    page = record_console(open_browser(ca_files=[dev_ca_file(center)]).new_page())
    sign_in(page, center, "mike", f"/events/{event_id}")
    played: dict[str, Any] = page.evaluate(PLAY)
    assert played["source"].endswith(f"/events/{event_id}/recording.mp4")
    assert abs(played["duration"] - 3.0) < 0.1
    assert (played["width"], played["height"]) == (320, 240)
    assert played["shown"] > 0  # pictures were drawn, not only sound played
    assert abs(played["at"] - 2.5) < 0.1
    # As a phone shows it: the player fits the width (looked at when changed; not asserted).
    page.set_viewport_size({"width": 390, "height": 844})
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshot_path("event-recording-phone")), full_page=True)
