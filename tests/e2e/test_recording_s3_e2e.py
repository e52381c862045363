"""A recording kept in an object store, end to end, through a crash of the recorder service.

The tree of e2e_support with ``townhall recorder`` beside it, its settings
(``[storage] kind = "s3"``) pointing at an S3-compatible store: moto's S3
server, a stand-in (tests/objectstore_support.py says why no real one runs
here) spoken to over real HTTP. Mike streams the 440 Hz tone, the service is
killed with SIGKILL mid-event and started again, Mike goes on, the event
ends. What a user would check afterwards: the data folder holds nothing of
the event any more; the Center lists both parts, streams each from the store
with ranges; ffprobe accepts both files as fetched through the Center, and
both hold the tone; the second part's chat holds what Mike said after the
restart.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.e2e_support import (
    LiveSystem,
    end_after_a_last_word,
    everyone_with_recorder,
    grown_to,
    recorders,
    running_system,
    schedule_recorded,
    stream_tone,
)
from tests.e2e.test_recorder_service_e2e import assert_plays_the_tone
from tests.objectstore_support import ACCESS_KEY, BUCKET, SECRET_KEY, moto_s3
from tests.support import Center, make_settings
from townhall.config import Settings, StorageSettings


@pytest.fixture
def s3_endpoint(tmp_path: Path) -> Iterator[str]:
    with moto_s3(tmp_path / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str, s3_endpoint: str) -> Settings:
    store = StorageSettings(
        kind="s3",
        endpoint_url=s3_endpoint,
        bucket=BUCKET,
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    return make_settings(tmp_path / "data", database_url).model_copy(update={"storage": store})


@pytest.fixture
def system(center: Center) -> Iterator[LiveSystem]:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    store = center.settings.storage
    with (center.settings.data / "townhall.toml").open("a") as settings:
        settings.write(
            "[storage]\n"
            'kind = "s3"\n'
            f'endpoint_url = "{store.endpoint_url}"\n'
            f'bucket = "{store.bucket}"\n'
            f'access_key_id = "{store.access_key_id}"\n'
            f'secret_access_key = "{store.secret_access_key}"\n'
        )
    prepared.start("recorder")
    yield from running_system(prepared)


def uploaded_parts(center: Center, event_id: int, count: int, timeout: float = 60) -> dict:  # type: ignore[type-arg]
    """The recording's facts once the Center lists ``count`` parts, all of them finished."""
    deadline = time.monotonic() + timeout
    with center.client("olga") as api:
        while True:
            answer = api.get(f"/api/v1/events/{event_id}/recording")
            if answer.status_code == 200 and len(answer.json()["parts"]) == count:
                return answer.json()  # type: ignore[no-any-return]
            assert time.monotonic() < deadline, f"never {count} parts: {answer.text}"
            time.sleep(0.3)


def fetched(center: Center, event_id: int, url: str, into: Path) -> Path:
    """The part as a viewer gets it through the Center, whole and in two ranges."""
    with center.client("mike") as viewer:
        whole = viewer.get(url)
        assert whole.status_code == 200, whole.text
        size = len(whole.content)
        head = viewer.get(url, headers={"Range": "bytes=0-999"})
        rest = viewer.get(url, headers={"Range": "bytes=1000-"})
    assert (head.status_code, rest.status_code) == (206, 206)
    assert rest.headers["content-range"] == f"bytes 1000-{size - 1}/{size}"
    assert head.content + rest.content == whole.content
    into.write_bytes(whole.content)
    return into


async def test_a_stored_recording_survives_a_killed_service_and_plays_from_the_store(
    system: LiveSystem, center: Center, tmp_path: Path
) -> None:
    event_id = schedule_recorded(center, "Recorded into the object store")
    folder = center.settings.data / "recordings" / str(event_id)
    olga, mike, _ = await everyone_with_recorder(system, center, event_id)
    first = recorders(olga)
    microphone = await stream_tone(mike, 4.0)
    try:
        await asyncio.to_thread(grown_to, folder / "recording.webm", 20_000)  # ≈ 3 s of tone
    except AssertionError as error:
        raise AssertionError(f"{error}\n{system.logs()}") from None
    system.kill("recorder", signal.SIGKILL)

    system.start("recorder")
    await olga.wait_for(lambda: recorders(olga) - first, "the restarted recorder", timeout=40)
    await stream_tone(mike, 3.0, microphone)
    mike.participant.say("after the restart")
    await end_after_a_last_word(olga, mike, "done")

    try:
        facts = await asyncio.to_thread(uploaded_parts, center, event_id, 2)
    except AssertionError as error:
        raise AssertionError(f"{error}\n{system.logs()}") from None
    assert [(p["number"], p["complete"]) for p in facts["parts"]] == [(1, False), (2, True)]
    assert facts["complete"] is True
    deadline = time.monotonic() + 30
    while folder.exists():  # the service deletes its copy once the Center has the part
        assert time.monotonic() < deadline, sorted(p.name for p in folder.iterdir())
        await asyncio.sleep(0.2)

    for part in facts["parts"]:
        media = fetched(center, event_id, part["url"], tmp_path / f"part-{part['number']}.webm")
        assert_plays_the_tone(media, 2.0)
    with center.client("mike") as viewer:
        chat = viewer.get(facts["parts"][1]["chat_url"]).text
        page = viewer.get(f"/events/{event_id}").text
    assert "<v mike>after the restart" in chat
    assert f'src="/events/{event_id}/recording-2.webm"' in page
    assert "uploaded to the object store" in (system.data / "recorder.log").read_text()
