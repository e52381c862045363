"""A recorded event end to end: real tree, real TLS, a ``townhall record`` process, ffprobe.

The Controller forms the tree; a recorder ticket from the Center's API starts
``townhall record`` as its own process, which joins the tree as a listener.
Mike (on child-a) streams a 440 Hz tone, Pia (in the DMZ) chats, the
moderator ends the event. Then what a user would check: ffprobe reads one
Opus and one VP8 track and a duration, the audio decodes to 440 Hz, the
WebVTT file holds Pia's words, the Center plays it (a Range request answers
206 with exactly those bytes) and marks the event as recorded. A second
recorder killed with SIGKILL mid-event leaves a file that ffprobe accepts
and that plays the tone.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator

import numpy as np
import pytest

from tests.e2e.e2e_support import (
    LiveSystem,
    everyone_with_recorder,
    grown_to,
    running_system,
    schedule_recorded,
    start_recorder,
    stream_tone,
    wait_exit,
)
from tests.recording.probe import codecs, decoded_audio, dominant_frequency, ffprobe
from tests.support import Center
from townhall.client.audio import SAMPLE_RATE
from townhall.client.events import ChatReceived, Left
from townhall.wire import ByeReason


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    yield from running_system(prepared)


async def test_a_recorded_event_plays_back_from_the_center(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_recorded(center, "Recorded town hall")
    recorder = start_recorder(center, event_id, system.data)
    try:
        olga, mike, pia = await everyone_with_recorder(system, center, event_id)
        pia.participant.say("a question from the DMZ")
        await olga.wait_for(
            lambda: any(isinstance(e, ChatReceived) for e in olga.events), "pia's chat"
        )
        await stream_tone(mike, 3.0)
        # The last packets reach everyone before the moderator ends the event.
        mike.participant.say("done")
        await olga.wait_for(
            lambda: any(isinstance(e, ChatReceived) and e.text == "done" for e in olga.events),
            "mike's last word",
        )
        olga.participant.end_event()
        await olga.wait_for(lambda: olga.left() is not None, "the end")
        assert await wait_exit(recorder) == 0, system.logs()
    finally:
        if recorder.poll() is None:
            recorder.kill()
    folder = center.settings.data / "recordings" / str(event_id)
    summary = json.loads((folder / "recording.json").read_text())
    assert summary["complete"] is True and summary["chat_messages"] == 2

    media = folder / "recording.webm"
    probe = ffprobe(media)
    streams = codecs(probe)
    assert streams["audio"]["codec_name"] == "opus"
    assert streams["video"]["codec_name"] == "vp8"
    duration = float(probe["format"]["duration"])  # type: ignore[index]
    assert 3.0 <= duration < 120
    pcm = decoded_audio(media)
    loud = np.flatnonzero(np.abs(pcm) > 3000)
    assert len(loud) >= 2.5 * SAMPLE_RATE, "the tone is not in the recording"
    middle = (loud[0] + loud[-1]) / 2 / SAMPLE_RATE
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, middle - 0.5) - 440) <= 5

    vtt = (folder / "chat.vtt").read_text()
    assert vtt.startswith("WEBVTT")
    assert "<v pia>a question from the DMZ" in vtt

    data = media.read_bytes()
    with center.client("mike") as viewer:
        page = viewer.get(f"/events/{event_id}")
        assert f'src="/events/{event_id}/recording.webm"' in page.text
        assert f'src="/events/{event_id}/chat.vtt"' in page.text
        part = viewer.get(f"/events/{event_id}/recording.webm", headers={"Range": "bytes=100-1123"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1123/{len(data)}"
        assert part.content == data[100:1124]
        whole = viewer.get(f"/events/{event_id}/recording.webm")
        assert whole.status_code == 200 and whole.content == data
        catalog = viewer.get("/events", params={"when": "all"})
        assert f'href="/events/{event_id}#recording"' in catalog.text


async def test_a_recorder_killed_mid_event_leaves_a_file_that_plays(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_recorded(center, "Recorder crash")
    recorder = start_recorder(center, event_id, system.data)
    media = center.settings.data / "recordings" / str(event_id) / "recording.webm"
    try:
        olga, mike, _ = await everyone_with_recorder(system, center, event_id)
        await stream_tone(mike, 4.0)
        # Wait for the recorder to have written past the tone (its mix lags arrival
        # a little), then kill it without a chance to finish the file.
        mike.participant.say("after the tone")
        await olga.wait_for(
            lambda: any(isinstance(e, ChatReceived) for e in olga.events), "the chat"
        )
        await asyncio.to_thread(grown_to, media, 20_000)  # ≈ 3 s of the tone at 48 kb/s
    finally:
        recorder.send_signal(signal.SIGKILL)
        recorder.wait()
    assert not (media.parent / "recording.json").exists()  # it never finished
    streams = codecs(ffprobe(media))
    assert streams["audio"]["codec_name"] == "opus"
    pcm = decoded_audio(media)
    loud = np.flatnonzero(np.abs(pcm) > 3000)
    assert len(loud) >= 2 * SAMPLE_RATE
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, loud[0] / SAMPLE_RATE + 0.5) - 440) <= 5
    with center.client("olga") as api:
        info = api.get(f"/api/v1/events/{event_id}/recording")
    assert info.status_code == 200 and info.json()["complete"] is False
    left = [e for e in olga.events if isinstance(e, Left)]
    assert left == [] or left[0].reason is not ByeReason.EVENT_ENDED
    await olga.participant.leave()
