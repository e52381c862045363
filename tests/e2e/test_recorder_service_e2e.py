"""The recorder service end to end: events with recording on are recorded with nobody starting it.

The tree of e2e_support runs with one more process, ``townhall recorder``
(the service ``townhall up`` and the systemd unit run), polling the Center's
database every 0.3 s. Nobody asks for a recorder ticket: the test only
schedules an event with recording on, joins it and talks. What a user would
check afterwards: the Center serves a recording that ffprobe accepts, whose
audio is the 440 Hz tone Mike streamed and whose chat holds Pia's words; an
event whose recording is off gets no recorder and no folder; and the service
killed with SIGKILL mid-event and started again leaves two parts, both
accepted by ffprobe, both served by the Center with ranges.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.e2e.e2e_support import (
    LiveSystem,
    Watcher,
    appeared,
    end_after_a_last_word,
    everyone_with_recorder,
    grown_to,
    recorders,
    running_system,
    schedule_recorded,
    stream_tone,
    ticket_for,
)
from tests.recording.probe import codecs, decoded_audio, dominant_frequency, ffprobe
from tests.support import Center
from townhall.client.audio import SAMPLE_RATE
from townhall.client.events import ChatReceived


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    prepared.start("recorder")
    yield from running_system(prepared)


def folder_of(center: Center, event_id: int) -> Path:
    return center.settings.data / "recordings" / str(event_id)


def assert_plays_the_tone(media: Path, seconds: float) -> None:
    streams = codecs(ffprobe(media))
    assert streams["audio"]["codec_name"] == "opus"
    assert streams["video"]["codec_name"] == "vp8"
    pcm = decoded_audio(media)
    loud = np.flatnonzero(np.abs(pcm) > 3000)
    assert len(loud) >= seconds * SAMPLE_RATE, "the tone is not in the recording"
    start = loud[0] / SAMPLE_RATE + 0.5
    assert abs(dominant_frequency(pcm, SAMPLE_RATE, start) - 440) <= 5


def assert_served_with_ranges(center: Center, event_id: int, name: str, media: Path) -> None:
    data = media.read_bytes()
    with center.client("mike") as viewer:
        part = viewer.get(f"/events/{event_id}/{name}", headers={"Range": "bytes=100-1123"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 100-1123/{len(data)}"
        assert part.content == data[100:1124]
        whole = viewer.get(f"/events/{event_id}/{name}")
        assert whole.status_code == 200 and whole.content == data


async def test_an_event_with_recording_on_is_recorded_with_nobody_starting_a_recorder(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_recorded(center, "Recorded by the service")
    olga, mike, pia = await everyone_with_recorder(system, center, event_id)
    pia.participant.say("a question from the DMZ")
    await olga.wait_for(lambda: any(isinstance(e, ChatReceived) for e in olga.events), "pia")
    await stream_tone(mike, 3.0)
    await end_after_a_last_word(olga, mike, "done")

    folder = folder_of(center, event_id)
    await asyncio.to_thread(appeared, folder / "recording.json")
    summary = json.loads((folder / "recording.json").read_text())
    assert summary["complete"] is True and summary["chat_messages"] == 2
    media = folder / "recording.webm"
    duration = float(ffprobe(media)["format"]["duration"])  # type: ignore[index]
    assert 3.0 <= duration < 120
    assert_plays_the_tone(media, 2.5)
    assert "<v pia>a question from the DMZ" in (folder / "chat.vtt").read_text()
    assert_served_with_ranges(center, event_id, "recording.webm", media)
    with center.client("mike") as viewer:
        page = viewer.get(f"/events/{event_id}").text
    assert f'src="/events/{event_id}/chat.vtt"' in page
    assert not (folder / "recording-2.webm").exists()  # one recorder, one part


async def test_no_recorder_joins_an_event_whose_recording_is_off(
    system: LiveSystem, center: Center
) -> None:
    unrecorded = schedule_recorded(center, "Off the record", recording=False)
    with center.client("olga") as api:
        await system.wait_state(api, unrecorded, "ready", timeout=120)
    quiet = Watcher(ticket_for(center, "olga", unrecorded), "main")
    await quiet.participant.join()
    # A recorded event made live after the first: once the service has put its recorder
    # there, it has polled while the first was live too, and left it alone.
    recorded = schedule_recorded(center, "On the record")
    with center.client("olga") as api:
        await system.wait_state(api, recorded, "ready")
    mike = Watcher(ticket_for(center, "mike", recorded), "child-a")
    await mike.participant.join()
    await mike.wait_for(lambda: recorders(mike), "the recorder", timeout=30)

    assert recorders(quiet) == set()
    assert not folder_of(center, unrecorded).exists()
    assert f"event {unrecorded}:" not in (system.data / "recorder.log").read_text()
    await quiet.participant.leave()
    await mike.participant.leave()


async def test_the_service_killed_mid_event_and_restarted_leaves_two_parts_that_play(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_recorded(center, "Recorder service crash")
    folder = folder_of(center, event_id)
    olga, mike, _ = await everyone_with_recorder(system, center, event_id)
    first = recorders(olga)
    microphone = await stream_tone(mike, 4.0)
    try:
        await asyncio.to_thread(grown_to, folder / "recording.webm", 20_000)  # ≈ 3 s of tone
    except AssertionError as error:
        raise AssertionError(f"{error}\n{system.logs()}") from None
    system.kill("recorder", signal.SIGKILL)  # no chance to finish the file
    assert not (folder / "recording.json").exists()

    system.start("recorder")
    await olga.wait_for(lambda: recorders(olga) - first, "the restarted recorder", timeout=40)
    await stream_tone(mike, 3.0, microphone)
    mike.participant.say("after the restart")
    await end_after_a_last_word(olga, mike, "done")
    await asyncio.to_thread(appeared, folder / "recording-2.json")

    assert_plays_the_tone(folder / "recording.webm", 2.0)
    assert_plays_the_tone(folder / "recording-2.webm", 2.0)
    second = json.loads((folder / "recording-2.json").read_text())
    assert second["part"] == 2 and second["complete"] is True
    assert "<v mike>after the restart" in (folder / "chat-2.vtt").read_text()
    with center.client("olga") as api:
        info = api.get(f"/api/v1/events/{event_id}/recording").json()
    assert [(p["number"], p["complete"]) for p in info["parts"]] == [(1, False), (2, True)]
    assert info["complete"] is True
    assert_served_with_ranges(center, event_id, "recording.webm", folder / "recording.webm")
    assert_served_with_ranges(center, event_id, "recording-2.webm", folder / "recording-2.webm")
    with center.client("mike") as viewer:
        page = viewer.get(f"/events/{event_id}").text
    assert f'src="/events/{event_id}/recording-2.webm"' in page
