"""Recordings kept in an S3-compatible object store: upload, playback with ranges, delete.

The object store is moto's S3 server, a process of its own on loopback
spoken to over real HTTP: a stand-in (tests/objectstore_support.py says why
no real one runs here), and the one mock of this module. Everything else
is real: the Center over HTTP, the recorder service's uploader on the
Center's database, the files as the recorder leaves them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.center.test_recordings import schedule
from tests.objectstore_support import free_port, moto_s3, storage
from tests.support import Center, make_settings, start_center
from townhall.center import recordings
from townhall.config import Settings, StorageSettings
from townhall.inprocess import InProcessRecordingSources
from townhall.objectstore import ObjectMissing, ObjectStore, StoreUnavailable, single_range
from townhall.recording.uploads import upload_parts

BODY = bytes(range(256)) * 40  # 10 KiB standing in for a WebM part
MP4 = bytes(range(0, 256, 3)) * 100
CHAT = "WEBVTT\n\n1\n00:00:01.000 --> 00:00:06.000\n<v pia>hi\n\n"


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with moto_s3(tmp_path_factory.mktemp("moto") / "moto.log") as endpoint:
        yield endpoint


@pytest.fixture
def center_settings(tmp_path: Path, database_url: str, s3_endpoint: str) -> Settings:
    settings = make_settings(tmp_path / "data", database_url)
    store = storage(s3_endpoint, prefix=f"{tmp_path.name}/")  # a prefix for each test
    return settings.model_copy(update={"storage": store})


def leave_parts(center: Center, event_id: int) -> Path:
    """What a recorder service killed mid-event leaves: a finished WebM part with its
    chat and summary, then an H.264 part cut short (no summary), then a part it claimed
    but never wrote (empty)."""
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True)
    (folder / "recording.webm").write_bytes(BODY)
    (folder / "chat.vtt").write_text(CHAT)
    (folder / "recording.json").write_text('{"seconds": 61.5, "complete": false}')
    (folder / "recording-2.mp4").write_bytes(MP4)
    (folder / "chat-2.vtt").write_text("WEBVTT\n\n")
    (folder / "recording-3.webm").write_bytes(b"")
    (folder / "chat-3.vtt").write_text("")
    return folder


def uploader(center: Center) -> InProcessRecordingSources:
    return InProcessRecordingSources(center.settings, center.sessions)  # type: ignore[arg-type]


def test_uploaded_parts_play_from_the_store_with_ranges_and_leave_the_disk(
    center: Center,
) -> None:
    event_id = schedule(center, "public")
    folder = leave_parts(center, event_id)
    with center.client("mike") as viewer:
        assert viewer.get(f"/api/v1/events/{event_id}/recording").status_code == 404

    store = ObjectStore(center.settings.storage)
    uploaded = upload_parts(store, uploader(center), center.settings.data, event_id)

    assert [(p.number, p.container, p.seconds) for p in uploaded] == [
        (1, "webm", 61.5),
        (2, "mp4", None),
    ]
    assert not folder.exists()  # every part moved (the empty one dropped)
    with center.client("mike") as viewer:
        facts = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert facts["bytes"] == len(BODY) + len(MP4)
        assert [(p["url"], p["bytes"], p["complete"]) for p in facts["parts"]] == [
            (f"/events/{event_id}/recording.webm", len(BODY), False),
            (f"/events/{event_id}/recording-2.mp4", len(MP4), False),
        ]
        assert facts["seconds"] is None  # part 2 was cut short
        whole = viewer.get(f"/events/{event_id}/recording.webm")
        assert (whole.status_code, whole.content) == (200, BODY)
        assert whole.headers["content-type"] == "video/webm"
        assert whole.headers["accept-ranges"] == "bytes"
        part = viewer.get(
            f"/events/{event_id}/recording.webm", headers={"Range": "bytes=1000-1999"}
        )
        assert part.status_code == 206
        assert part.content == BODY[1000:2000]
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(BODY)}"
        tail = viewer.get(f"/events/{event_id}/recording-2.mp4", headers={"Range": "bytes=-100"})
        assert (tail.status_code, tail.content) == (206, MP4[-100:])
        assert tail.headers["content-type"] == "video/mp4"
        past = viewer.get(
            f"/events/{event_id}/recording.webm", headers={"Range": f"bytes={len(BODY)}-"}
        )
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{len(BODY)}"
        # Several ranges or nonsense: the whole file, as HTTP allows.
        for odd in ("bytes=0-1,5-6", "lines=1-2", "bytes=9-3"):
            answer = viewer.get(f"/events/{event_id}/recording.webm", headers={"Range": odd})
            assert (answer.status_code, len(answer.content)) == (200, len(BODY)), odd
        assert viewer.get(f"/events/{event_id}/chat.vtt").text == CHAT
        assert viewer.get(f"/events/{event_id}/recording-2.webm").status_code == 404
        assert viewer.get(f"/events/{event_id}/recording-3.webm").status_code == 404
        assert f'href="/events/{event_id}#recording"' in viewer.get("/events").text


def test_a_new_recorder_run_numbers_its_parts_after_the_stored_ones(center: Center) -> None:
    event_id = schedule(center, "public")
    leave_parts(center, event_id)
    sources = uploader(center)
    upload_parts(ObjectStore(center.settings.storage), sources, center.settings.data, event_id)
    assert sources.highest_uploaded_part(event_id) == 2
    # The service starts the next run at part 3: what it writes lands beside, not over.
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True)
    (folder / "recording-3.webm").write_bytes(BODY[::-1])
    (folder / "recording-3.json").write_text('{"seconds": 5, "complete": true}')
    upload_parts(ObjectStore(center.settings.storage), sources, center.settings.data, event_id)
    with center.client("mike") as viewer:
        facts = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert [p["number"] for p in facts["parts"]] == [1, 2, 3]
        assert facts["complete"] is True
        assert viewer.get(f"/events/{event_id}/recording.webm").content == BODY
        assert viewer.get(f"/events/{event_id}/recording-3.webm").content == BODY[::-1]


def test_deleting_a_stored_recording_removes_its_objects(center: Center) -> None:
    event_id = schedule(center, "public")
    leave_parts(center, event_id)
    store = ObjectStore(center.settings.storage)
    upload_parts(store, uploader(center), center.settings.data, event_id)
    with center.client("mike") as viewer:
        assert viewer.delete(f"/api/v1/events/{event_id}/recording").status_code == 403
    with center.client("olga") as organizer:
        assert organizer.delete(f"/api/v1/events/{event_id}/recording").status_code == 204
        assert organizer.get(f"/api/v1/events/{event_id}/recording").status_code == 404
        assert organizer.get(f"/events/{event_id}/recording.webm").status_code == 404
    with pytest.raises(ObjectMissing):
        store.open(store.key(event_id, "recording.webm"))
    for name in ("chat.vtt", "recording.json", "recording-2.mp4", "chat-2.vtt"):
        assert store.read_small(store.key(event_id, name), 1 << 20) is None, name
    with center.sessions() as session:  # type: ignore[operator]
        assert recordings.with_recordings(center.settings, session, [event_id]) == set()


def test_a_store_that_does_not_answer_keeps_the_parts_and_viewers_get_a_clear_503(
    center: Center, tmp_path: Path
) -> None:
    event_id = schedule(center, "public")
    folder = leave_parts(center, event_id)
    sources = uploader(center)
    unreachable = storage(f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable):
        upload_parts(ObjectStore(unreachable), sources, center.settings.data, event_id)
    assert (folder / "recording.webm").read_bytes() == BODY  # kept for the next try
    assert sources.highest_uploaded_part(event_id) == 0

    # A second Center on the same database whose store has gone away: the part is
    # listed (the database says so) but its bytes cannot be had now.
    upload_parts(ObjectStore(center.settings.storage), sources, center.settings.data, event_id)
    lost = center.settings.model_copy(update={"storage": unreachable, "data": tmp_path / "b"})
    server, _ = start_center(lost)
    with server as url:
        token = center.token_for("mike")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}) as viewer:
            assert viewer.get(f"/api/v1/events/{event_id}/recording").status_code == 200
            answer = viewer.get(f"/events/{event_id}/recording.webm", timeout=60)
            assert answer.status_code == 503
            assert "store does not answer" in answer.text
            assert BODY[:64] not in answer.content
            assert viewer.get("/healthz").status_code == 200  # nothing else disturbed


def test_single_range_passes_one_range_and_drops_the_rest() -> None:
    assert single_range("bytes=0-99") == "bytes=0-99"
    assert single_range("bytes=100-") == "bytes=100-"
    assert single_range("bytes=-500") == "bytes=-500"
    assert single_range(" bytes = 5-9 ") == "bytes=5-9"
    for refused in (None, "", "bytes=0-1,3-4", "items=0-1", "bytes=9-1", "bytes=" + "9" * 20):
        assert single_range(refused) is None, refused


def test_storage_settings_refuse_what_cannot_work() -> None:
    with pytest.raises(ValueError, match="needs endpoint_url, bucket"):
        StorageSettings(kind="s3")
    with pytest.raises(ValueError, match="bucket name"):
        storage("http://127.0.0.1:9000", bucket="Bad_Bucket")
    with pytest.raises(ValueError, match="http:// or https://"):
        storage("ftp://store.example.org")
    with pytest.raises(ValueError, match="ending in /"):
        storage("https://store.example.org", prefix="recordings")
    assert "not-a-secret" not in repr(storage("https://store.example.org"))
    assert json.loads(StorageSettings().model_dump_json())["kind"] == "folder"
