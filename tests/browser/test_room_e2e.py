"""The browser room end to end: two browsers and a Python participant on a two-server tree.

The Center runs in the test's process; the Controller and the live servers ``main`` and
``child-a`` run as processes, with certificates from the development CA that each
Chromium trusts through its own NSS db. Olga (organizer, so moderator) joins with one
click on the event page; Mike joins from his browser on ``child-a``; Pia joins with the
Python participant. Chat goes every way, privately too; hands go up and down; the floor
goes to Pia, whose 440 Hz tone Olga's page hears, then to Mike, whose fake microphone's
880 Hz tone Pia records; Mike's camera and shared screen are decoded in Olga's page;
``child-a`` is killed and Mike rejoins ``main`` with his chat intact; then Olga removes
Mike, whose page tells him why.
"""

from __future__ import annotations

import base64
import signal
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Page

from tests.browser.browser_support import screenshot_path
from tests.browser.conftest import OpenBrowser, ToneFile
from tests.browser.room_support import (
    PythonPeer,
    dev_ca_file,
    prepare_two_servers,
    record_console,
    room_state,
    run_two_servers,
    schedule_now,
    sign_in,
    wait_until,
)
from tests.e2e.e2e_support import LiveSystem, dominant_frequency
from tests.support import Center
from townhall.client.audio import SAMPLE_RATE
from townhall.wire import ByeReason

# Decodes what reaches the page (the tap in room.js) with the page's own AudioDecoder.
MEASURE_AUDIO = """async ([owner, seconds]) => {
  const samples = [];
  const decoder = new AudioDecoder({
    output: (data) => {
      const part = new Float32Array(data.numberOfFrames);
      data.copyTo(part, {planeIndex: 0, format: 'f32-planar'});
      samples.push(...part);
      data.close();
    },
    error: () => {},
  });
  decoder.configure({codec: 'opus', sampleRate: 48000, numberOfChannels: 1});
  window.townhallRoom.tapAudio((from, seq, timestampUs, data) => {
    if (from === owner && decoder.state === 'configured') {
      decoder.decode(new EncodedAudioChunk({type: 'key', timestamp: timestampUs, data}));
    }
  });
  const deadline = Date.now() + 30000;
  while (samples.length < seconds * 48000 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await decoder.flush().catch(() => {});
  return samples;
}"""


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    yield from run_two_servers(prepare_two_servers(center, center.settings.data))


def chat_in(page: Page) -> list[tuple[str, str, str | None]]:
    return [(c["sender"], c["text"], c["to"]) for c in room_state(page)["chat"]]


def say(page: Page, text: str, to: str = "") -> None:
    page.select_option("#chat-to", to)
    page.fill("#chat-text", text)
    page.press("#chat-text", "Enter")


def moderate(page: Page, target: str, button: str) -> None:
    page.select_option("#target", target)
    page.click(f"#{button}")


def test_two_browsers_and_a_python_participant_hold_an_event(
    system: LiveSystem, center: Center, open_browser: OpenBrowser, tone_file: ToneFile
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        wait_until(lambda: system.live(api, event_id)["state"] == "ready", "the tree", 60)
    ca = [dev_ca_file(center)]

    # Olga: signs in, and one click on the event page opens the room.
    olga = record_console(open_browser(audio_file=tone_file(330), ca_files=ca).new_page())
    sign_in(olga, center, "olga", f"/events/{event_id}")
    olga.screenshot(path=str(screenshot_path("room-join-page")), full_page=True)
    olga.click("text=Join in browser")
    olga.wait_for_url(f"{center.url}/events/{event_id}/room")
    wait_until(lambda: room_state(olga)["server"] is not None, "olga joined", 30, olga)
    say(olga, "before anyone else came")  # history: Mike's page is shown it on joining
    # Mike: his browser joins child-a (as `townhall join --server` would).
    mike = record_console(open_browser(audio_file=tone_file(880), ca_files=ca).new_page())
    sign_in(mike, center, "mike", "/events")
    mike.goto(f"{center.url}/events/{event_id}/room?server=child-a")
    pia = PythonPeer(center, "pia", event_id, "main")
    try:
        run_event(system, center, olga, mike, pia)
    finally:
        pia.close()


def run_event(system: LiveSystem, center: Center, olga: Page, mike: Page, pia: PythonPeer) -> None:
    pia.call(pia.watcher.participant.join())
    everyone = {"olga", "mike", "pia"}
    for page in (olga, mike):
        wait_until(
            lambda p=page: {m["name"] for m in room_state(p)["roster"]} == everyone,
            "everyone",
            30,
            olga,
            mike,
        )
    assert room_state(olga)["moderator"] is True
    assert room_state(mike)["server"] == "child-a"
    # What the page gets from the Center: the servers, and a credential it cannot read.
    ticket = mike.evaluate(
        """async () => (await fetch(location.pathname.replace('/room', '').replace('/events',
          '/api/v1/events') + '/browser-ticket', {method: 'POST', body: '{}',
          headers: {'content-type': 'application/json'}})).json()"""
    )
    assert {s["name"] for s in ticket["servers"]} == {"main", "child-a"}
    assert ticket["display_name"] == "mike" and ticket["role"] == "participant"
    assert "cookies" not in ticket and "mike" not in str(
        base64.b64decode(ticket["sealed_credential"])
    )
    assert ("olga", "before anyone else came", None) in chat_in(mike)
    assert not olga.is_hidden("#moderation")
    assert mike.is_hidden("#moderation")
    # Every control has a name a screen reader says; on a phone nothing scrolls sideways.
    unlabelled = mike.evaluate(
        """() => [...document.querySelectorAll('#room button, #room select, #room input')]
          .filter((el) => !(el.textContent.trim() || el.closest('label') || el.ariaLabel))
          .map((el) => el.id)"""
    )
    assert unlabelled == []
    mike.set_viewport_size({"width": 390, "height": 844})
    assert mike.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    mike.screenshot(path=str(screenshot_path("room-phone")), full_page=True)

    # Chat every way, and privately.
    say(olga, "welcome, everyone")
    say(mike, "hello from child-a")
    pia.do(lambda: pia.watcher.participant.say("hello from python"))
    say(mike, "just for olga", to="olga")
    pia.do(lambda: pia.watcher.participant.say("psst, mike", to="mike"))
    public = {
        ("olga", "welcome, everyone"),
        ("mike", "hello from child-a"),
        ("pia", "hello from python"),
    }
    for page in (olga, mike):
        wait_until(lambda p=page: public <= {(s, t) for s, t, _ in chat_in(p)}, "public chat")
    wait_until(lambda: public <= set(pia.chat()), "public chat in Python")
    wait_until(lambda: ("mike", "just for olga", "olga") in chat_in(olga), "mike's dm")
    wait_until(lambda: ("pia", "psst, mike", "mike") in chat_in(mike), "pia's dm")
    # A marker after the private messages: once everyone has it, a leak would have shown.
    say(olga, "marker 1")
    for page in (olga, mike):
        wait_until(lambda p=page: ("olga", "marker 1", None) in chat_in(p), "marker")
    wait_until(lambda: ("olga", "marker 1") in pia.chat(), "marker in Python")
    assert ("mike", "just for olga") not in pia.chat()
    assert not any(t == "psst, mike" for _, t, _ in chat_in(olga))
    assert olga.locator("#chat-log li.private").count() == 1

    # Hands: raised in order, one lowered by the moderator, one by its owner.
    mike.focus("#hand")  # by keyboard
    mike.keyboard.press("Enter")
    wait_until(lambda: room_state(olga)["hands"] == ["mike"], "mike's hand")
    pia.do(lambda: pia.watcher.participant.raise_hand())
    wait_until(lambda: room_state(olga)["hands"] == ["mike", "pia"], "two hands, in order")
    wait_until(lambda: olga.locator("#hands li").all_inner_texts() == ["mike", "pia"], "shown")
    olga.screenshot(path=str(screenshot_path("room-moderator-controls")), full_page=True)
    moderate(olga, "pia", "lower-hand")
    wait_until(lambda: room_state(mike)["hands"] == ["mike"], "pia's hand lowered")
    assert mike.get_attribute("#hand", "aria-pressed") == "true"
    mike.click("#hand")
    wait_until(lambda: room_state(olga)["hands"] == [], "no hands")

    # The floor to Pia: her Python participant's 440 Hz tone is heard in Olga's page.
    moderate(olga, "pia", "give-floor")
    wait_until(lambda: olga.inner_text("#floor") == "pia holds the floor.", "pia's floor")
    streaming = pia.start_tone(tone(4.0, 440))
    samples = np.array(olga.evaluate(MEASURE_AUDIO, ["pia", 2]), dtype=np.float64)
    streaming.result(60)
    assert len(samples) >= SAMPLE_RATE, "Olga's page decoded less than a second of Pia"
    assert np.sqrt(np.mean(samples**2)) > 0.05, "silence"
    assert abs(dominant_frequency(samples, SAMPLE_RATE) - 440) <= 5

    # The floor to Mike: his browser sends his fake microphone's 880 Hz tone; Pia records it.
    heard_before = len(pia.watcher.media)
    moderate(olga, "mike", "give-floor")
    wait_until(
        lambda: any(
            s["kind"] == "microphone" and s["streamId"] is not None
            for s in room_state(mike)["sending"]
        ),
        "mike's microphone stream",
    )
    wait_until(lambda: len(pia.watcher.media) - heard_before >= 150, "3 s of mike", 30)
    wait_until(
        lambda: olga.locator('#roster li.speaking[data-name="mike"]').count() == 1,
        "mike shown speaking in olga's roster",
    )
    pcm = pia.heard(heard_before).astype(np.float64) / 32768
    assert np.sqrt(np.mean(pcm**2)) > 0.02, "silence"
    assert abs(dominant_frequency(pcm, SAMPLE_RATE) - 880) <= 5

    # Mike mutes himself, and his speaking light goes out; the moderator mutes and unmutes him.
    mike.click("#mute-self")
    assert mike.inner_text("#speaking-state") == "You may speak, but you muted yourself."
    wait_until(
        lambda: olga.locator('#roster li.speaking[data-name="mike"]').count() == 0, "silence"
    )
    mike.click("#mute-self")
    moderate(olga, "mike", "mute-member")
    wait_until(
        lambda: mike.inner_text("#speaking-state") == "You may speak, but a moderator muted you.",
        "the moderator's mute",
    )
    wait_until(
        lambda: olga.locator('#roster li[data-name="mike"] .badge', has_text="muted").count() == 1,
        "mike shown muted to olga",
    )
    moderate(olga, "mike", "unmute-member")
    wait_until(
        lambda: mike.inner_text("#speaking-state") == "You may speak: your microphone is on.",
        "unmuted",
    )

    check_video(olga, mike)

    # child-a dies: Mike's page rejoins main, with its chat as it was and no repeats.
    chat_before = chat_in(mike)
    system.kill("child-a", signal.SIGKILL)
    wait_until(lambda: room_state(mike)["rejoins"] >= 1, "mike back", 60)
    assert room_state(mike)["server"] == "main"
    say(mike, "back on main")
    wait_until(lambda: ("mike", "back on main", None) in chat_in(olga), "mike's chat after")
    after = chat_in(mike)
    assert after[: len(chat_before)] == chat_before
    assert len(after) == len(set(after)), "a message came twice"
    assert not mike.is_hidden("#room")

    # Olga removes Mike; his page says why, and he is gone from the roster.
    olga.once("dialog", lambda dialog: dialog.accept())
    moderate(olga, "mike", "remove-member")
    wait_until(lambda: (room_state(mike)["ended"] or {}).get("reason") == "removed", "removal")
    assert "A moderator removed you" in mike.inner_text("#problems")
    wait_until(lambda: "mike" not in {m["name"] for m in room_state(olga)["roster"]}, "mike gone")
    mike.screenshot(path=str(screenshot_path("room-removed")), full_page=True)

    # Olga ends the event: the Python participant is told, and so is her own page.
    olga.once("dialog", lambda dialog: dialog.accept())
    olga.click("#end-event")
    wait_until(lambda: pia.watcher.left() is not None, "pia told the event ended")
    assert pia.watcher.left().reason is ByeReason.EVENT_ENDED  # type: ignore[union-attr]
    wait_until(lambda: "The event has ended." in olga.inner_text("#problems"), "olga's page")


def check_video(olga: Page, mike: Page) -> None:
    """Mike shares his camera and his screen; Olga's page decodes frames of both."""
    mike.click("#share-camera")
    mike.click("#share-screen")

    def decoded() -> dict[str, int]:
        state = room_state(olga)
        kinds = {s["stream_id"]: s.get("kind") for s in state["streams"]}
        return {kinds.get(int(i), "?"): n for i, n in state["framesDecoded"].items()}

    wait_until(
        lambda: decoded().get("camera", 0) >= 5 and decoded().get("screen", 0) >= 5,
        "frames of mike's camera and screen",
        40,
    )
    assert olga.locator("#screen canvas").count() == 1
    assert olga.locator("#tiles canvas").count() == 1
    olga.screenshot(path=str(screenshot_path("room-video-and-screen")), full_page=True)


def tone(seconds: float, frequency: float) -> Any:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.4 * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
