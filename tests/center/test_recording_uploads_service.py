"""The recorder service with an object store: parts nobody records go up, one event at a time.

The service's upload loop as ``townhall recorder`` runs it, on the Center's
database (``InProcessRecordingSources``) and moto's S3 server (a stand-in,
tests/objectstore_support.py says why). An event whose upload keeps failing
(here: its media is a folder, as a broken disk might leave it) is tried
again with a growing wait and never holds up the others, and its files stay
where they are; an event being recorded is left alone until its recorder
stops.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.center.test_recordings import schedule
from tests.objectstore_support import moto_s3, storage
from tests.support import Center, make_settings
from townhall.config import Settings
from townhall.inprocess import InProcessRecordingSources
from townhall.live.backoff import Backoff
from townhall.objectstore import ObjectStore
from townhall.recording.recorder import Summary
from townhall.recording.service import RecorderService, ServiceSettings, _Running

BODY = b"\x1aE\xdf\xa3" + bytes(range(256)) * 8


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str) -> Iterator[Settings]:
    with moto_s3(tmp_path / "moto.log") as endpoint:
        settings = make_settings(tmp_path / "data", database_url)
        yield settings.model_copy(update={"storage": storage(endpoint)})


async def record_until(stop: asyncio.Event) -> Summary:
    await stop.wait()
    return Summary(1, 1, 3.0, 1, 0, 0, 0, len(BODY), complete=True)


def finished_part(center: Center, event_id: int) -> Path:
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True)
    (folder / "recording.webm").write_bytes(BODY)
    (folder / "recording.json").write_text('{"seconds": 3, "complete": true}')
    return folder


async def test_a_failing_event_is_retried_without_holding_up_the_others(center: Center) -> None:
    broken, fine, recorded = (schedule(center, "public") for _ in range(3))
    stuck = center.settings.data / "recordings" / str(broken)
    (stuck / "recording.webm").mkdir(parents=True)  # cannot be read as a file
    fine_folder = finished_part(center, fine)
    recorded_folder = finished_part(center, recorded)
    sources = InProcessRecordingSources(center.settings, center.sessions)  # type: ignore[arg-type]
    service = RecorderService(
        sources,
        center.settings.data,
        ServiceSettings(restart=Backoff(initial=0.05, maximum=0.2)),
        store=ObjectStore(center.settings.storage),
    )
    # A recorder writing the third event: a task that runs until stopped.
    stop = asyncio.Event()
    service.running[recorded] = _Running(stop, asyncio.create_task(record_until(stop)), 0.0)

    deadline = time.monotonic() + 60
    while fine_folder.exists():
        assert time.monotonic() < deadline, "the fine event was never uploaded"
        service._upload_next()
        await asyncio.sleep(0.05)
    assert sources.highest_uploaded_part(fine) == 1
    assert service.upload_failures >= 1 and service.upload_failed == broken
    assert (stuck / "recording.webm").is_dir()  # kept for a later try
    assert sources.highest_uploaded_part(broken) == 0
    # Being recorded: left alone.
    assert recorded_folder.exists() and sources.highest_uploaded_part(recorded) == 0

    stop.set()
    await service.running.pop(recorded).task
    deadline = time.monotonic() + 60
    while recorded_folder.exists():
        assert time.monotonic() < deadline, "the recorded event was never uploaded"
        service._upload_next()
        await asyncio.sleep(0.05)
    assert sources.highest_uploaded_part(recorded) == 1
    await service.stop_all()
