"""An event's recording in the Center: who may watch it, ranges, deleting, recorder tickets.

A real Center over HTTP; the recording is put in the event's folder as the
recorder leaves it. An outsider of a private event is refused as if neither
existed, a Range request gets exactly its bytes (206), only the event's
managers may delete it or get a recorder ticket, and only while the event's
recording setting is on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.support import Center
from townhall.center import recordings
from townhall.center.events import EventError
from townhall.center.live import record_live_state
from townhall.center.tables import Event
from townhall.inprocess import ManagerTrees
from townhall.store.conventions import now_utc

BODY = bytes(range(256)) * 40  # 10 KiB standing in for the WebM file


def schedule(
    center: Center,
    visibility: str,
    recording: bool = True,
    starts_in: timedelta = timedelta(hours=1),
) -> int:
    with center.client("olga") as olga:
        response = olga.post(
            "/api/v1/events",
            json={
                "title": f"A {visibility} meeting",
                "starts_at": (datetime.now(UTC) + starts_in).isoformat(),
                "duration_minutes": 30,
                "visibility": visibility,
                "recording": recording,
            },
        )
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


def put_recording(center: Center, event_id: int, *, finished: bool = True) -> None:
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True)
    (folder / "recording.webm").write_bytes(BODY)
    (folder / "chat.vtt").write_text("WEBVTT\n\n1\n00:00:01.000 --> 00:00:06.000\n<v pia>hi\n\n")
    if finished:
        (folder / "recording.json").write_text('{"seconds": 61.5, "complete": true}')


def test_an_outsider_of_a_private_event_cannot_watch_its_recording(center: Center) -> None:
    event_id = schedule(center, "private")
    put_recording(center, event_id)
    with center.client("mike") as outsider:
        for path in (
            f"/events/{event_id}/recording.webm",
            f"/events/{event_id}/chat.vtt",
            f"/api/v1/events/{event_id}/recording",
        ):
            refused = outsider.get(path)
            assert refused.status_code == 404, path
            assert BODY[:64] not in refused.content
    with center.client("olga") as organizer:
        assert organizer.get(f"/events/{event_id}/recording.webm").content == BODY


def test_a_range_request_gets_exactly_its_bytes(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id)
    with center.client("mike") as viewer:
        part = viewer.get(
            f"/events/{event_id}/recording.webm", headers={"Range": "bytes=1000-1999"}
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 1000-1999/{len(BODY)}"
        assert part.content == BODY[1000:2000]
        tail = viewer.get(f"/events/{event_id}/recording.webm", headers={"Range": "bytes=-100"})
        assert tail.status_code == 206 and tail.content == BODY[-100:]
        assert part.headers["content-type"] == "video/webm"
        info = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert info == {
            "event_id": event_id,
            "url": f"/events/{event_id}/recording.webm",
            "chat_url": f"/events/{event_id}/chat.vtt",
            "bytes": len(BODY),
            "seconds": 61.5,
            "complete": True,
            "parts": [
                {
                    "number": 1,
                    "url": f"/events/{event_id}/recording.webm",
                    "chat_url": f"/events/{event_id}/chat.vtt",
                    "bytes": len(BODY),
                    "seconds": 61.5,
                    "complete": True,
                }
            ],
        }
        page = viewer.get(f"/events/{event_id}").text
        assert "<video" in page and "Download the recording" in page
        assert "Delete the recording" not in page  # not his event


def test_a_recording_cut_short_is_shown_as_incomplete(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id, finished=False)
    with center.client("olga") as organizer:
        assert organizer.get(f"/api/v1/events/{event_id}/recording").json()["complete"] is False
        assert "stopped before the event ended" in organizer.get(f"/events/{event_id}").text


def test_only_the_organizer_deletes_a_recording(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id)
    with center.client("mike") as member:
        refused = member.delete(f"/api/v1/events/{event_id}/recording")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "not_event_manager"
    with center.client("olga") as organizer:
        assert "Delete the recording" in organizer.get(f"/events/{event_id}").text
        assert organizer.delete(f"/api/v1/events/{event_id}/recording").status_code == 204
        gone = organizer.get(f"/events/{event_id}/recording.webm")
        assert gone.status_code == 404
        assert f"event {event_id} has no recording" in gone.text
        assert "<video" not in organizer.get(f"/events/{event_id}").text
    assert not (center.settings.data / "recordings" / str(event_id)).exists()


def test_recorder_tickets_only_for_managers_of_recorded_events(center: Center) -> None:
    unrecorded = schedule(center, "public", recording=False)
    recorded = schedule(center, "public")
    with center.client("olga") as organizer:
        off = organizer.post(f"/api/v1/events/{unrecorded}/recorder-ticket")
        assert off.status_code == 409
        assert off.json()["error"]["code"] == "recording_off"
    with center.client("mike") as member:
        refused = member.post(f"/api/v1/events/{recorded}/recorder-ticket")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "not_event_manager"


SECOND = bytes(reversed(range(256))) * 30  # part 2, told apart from part 1 by its bytes


def put_second_part(center: Center, event_id: int) -> None:
    folder = center.settings.data / "recordings" / str(event_id)
    (folder / "recording-2.webm").write_bytes(SECOND)
    (folder / "chat-2.vtt").write_text(
        "WEBVTT\n\n1\n00:00:02.000 --> 00:00:07.000\n<v pia>back\n\n"
    )
    (folder / "recording-2.json").write_text('{"seconds": 30, "complete": true}')


def test_a_recording_in_two_parts_serves_and_shows_both(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id, finished=False)  # its recorder was killed
    put_second_part(center, event_id)
    with center.client("mike") as viewer:
        info = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert [part["url"] for part in info["parts"]] == [
            f"/events/{event_id}/recording.webm",
            f"/events/{event_id}/recording-2.webm",
        ]
        assert [part["complete"] for part in info["parts"]] == [False, True]
        assert info["bytes"] == len(BODY) + len(SECOND) and info["complete"] is True
        assert info["seconds"] is None  # part 1 never said how long it is
        part = viewer.get(
            f"/events/{event_id}/recording-2.webm", headers={"Range": "bytes=500-1499"}
        )
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 500-1499/{len(SECOND)}"
        assert part.content == SECOND[500:1500]
        assert viewer.get(f"/events/{event_id}/recording.webm").content == BODY
        assert "<v pia>back" in viewer.get(f"/events/{event_id}/chat-2.vtt").text
        page = viewer.get(f"/events/{event_id}").text
        assert f'src="/events/{event_id}/recording.webm"' in page
        assert f'src="/events/{event_id}/recording-2.webm"' in page
        assert f'src="/events/{event_id}/chat-2.vtt"' in page
        assert "in 2 parts" in page


@pytest.mark.parametrize("number", ["0", "1", "3", "1000", "99999999999999999999", "x", "-2"])
def test_a_part_that_is_not_there_is_refused(center: Center, number: str) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id)
    put_second_part(center, event_id)
    with center.client("mike") as viewer:
        for path in (f"recording-{number}.webm", f"chat-{number}.vtt"):
            refused = viewer.get(f"/events/{event_id}/{path}")
            assert refused.status_code in (404, 422), path
            assert BODY[:64] not in refused.content and SECOND[:64] not in refused.content


def test_files_beside_the_parts_are_not_parts(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id)
    folder = center.settings.data / "recordings" / str(event_id)
    for stray in ("recording-01.webm", "recording-2.webm.tmp", "recording--3.webm"):
        (folder / stray).write_bytes(b"stray")
    with center.sessions() as session:  # type: ignore[operator]
        found = recordings.find(center.settings, session, event_id)
    assert found is not None and [part.number for part in found.parts] == [1]


def test_the_recorder_service_gets_tickets_only_for_recorded_joinable_events(
    center: Center,
) -> None:
    now = now_utc()
    recorded = schedule(center, "private", starts_in=timedelta(0))
    unrecorded = schedule(center, "public", recording=False, starts_in=timedelta(0))
    cancelled = schedule(center, "public", starts_in=timedelta(0))
    with center.client("olga") as organizer:
        assert organizer.delete(f"/api/v1/events/{cancelled}").status_code == 200
    trees = ManagerTrees()
    with center.sessions() as session:  # type: ignore[operator]
        with pytest.raises(EventError) as refused:
            recordings.issue_service_recorder_ticket(
                session, center.settings, unrecorded, trees=trees, now=now
            )
        assert refused.value.code == "recording_off"
        with pytest.raises(EventError) as refused:
            recordings.issue_service_recorder_ticket(
                session, center.settings, cancelled, trees=trees, now=now
            )
        assert refused.value.code == "event_cancelled"
        with pytest.raises(EventError) as refused:
            recordings.issue_service_recorder_ticket(
                session, center.settings, 987654, trees=trees, now=now
            )
        assert refused.value.code == "event_not_found"
        # No tree in this Center's Manager: refused as for the managers' route.
        with pytest.raises(EventError) as refused:
            recordings.issue_service_recorder_ticket(
                session, center.settings, recorded, trees=trees, now=now
            )
        assert refused.value.code == "no_tree"
        assert session.get(Event, recorded) is not None


def test_the_recorder_service_records_recorded_events_whose_tree_is_up(center: Center) -> None:
    recorded = schedule(center, "public", starts_in=timedelta(0))
    preparing = schedule(center, "public", starts_in=timedelta(0))
    unrecorded = schedule(center, "public", recording=False, starts_in=timedelta(0))
    degraded = schedule(center, "public", starts_in=timedelta(0))
    later = schedule(center, "public")
    with center.sessions() as session:  # type: ignore[operator]
        record_live_state(session, recorded, "ready", [])
        record_live_state(session, preparing, "preparing", [])
        record_live_state(session, unrecorded, "ready", [])
        record_live_state(session, degraded, "degraded", [])
        assert recordings.recorded_live_events(session, now_utc()) == [recorded, degraded]
        record_live_state(session, recorded, "ended", [])
        assert recordings.recorded_live_events(session, now_utc()) == [degraded]
        # Past its end the event is not recorded, whatever the last report said.
        assert recordings.recorded_live_events(session, now_utc() + timedelta(hours=2)) == []
    assert later not in (recorded, degraded)


MP4 = bytes(range(0, 256, 3)) * 100  # an H.264 part, told apart by its bytes


def put_mp4_part(center: Center, event_id: int, number: int) -> None:
    suffix = "" if number == 1 else f"-{number}"
    folder = center.settings.data / "recordings" / str(event_id)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"recording{suffix}.mp4").write_bytes(MP4)
    (folder / f"recording{suffix}.json").write_text(
        '{"seconds": 12, "complete": true, "container": "mp4"}'
    )


def test_an_mp4_part_is_served_as_mp4_with_ranges_and_played_as_mp4(center: Center) -> None:
    event_id = schedule(center, "public")
    put_recording(center, event_id, finished=False)
    put_mp4_part(center, event_id, 2)  # the presenter's browser sent H.264
    with center.client("mike") as viewer:
        info = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert [part["url"] for part in info["parts"]] == [
            f"/events/{event_id}/recording.webm",
            f"/events/{event_id}/recording-2.mp4",
        ]
        part = viewer.get(
            f"/events/{event_id}/recording-2.mp4", headers={"Range": "bytes=100-1099"}
        )
        assert part.status_code == 206
        assert part.headers["content-type"] == "video/mp4"
        assert part.headers["content-range"] == f"bytes 100-1099/{len(MP4)}"
        assert part.content == MP4[100:1100]
        whole = viewer.get(f"/events/{event_id}/recording-2.mp4")
        assert whole.status_code == 200 and whole.content == MP4
        assert whole.headers["content-disposition"].endswith(f'"event-{event_id}-2.mp4"')
        for wrong in ("recording-2.webm", "recording.mp4", "recording-3.mp4", "recording-x.mp4"):
            refused = viewer.get(f"/events/{event_id}/{wrong}")
            assert refused.status_code in (404, 422), wrong
            assert MP4[:64] not in refused.content and BODY[:64] not in refused.content
        page = viewer.get(f"/events/{event_id}").text
        assert f'<source src="/events/{event_id}/recording-2.mp4" type="video/mp4">' in page
        assert f'<source src="/events/{event_id}/recording.webm" type="video/webm">' in page
        assert f'href="/events/{event_id}/recording-2.mp4" download' in page


def test_a_recording_that_starts_in_mp4_is_found_marked_and_deleted(center: Center) -> None:
    event_id = schedule(center, "public")
    put_mp4_part(center, event_id, 1)
    with center.sessions() as session:  # type: ignore[operator]
        assert recordings.with_recordings(center.settings, session, [event_id]) == {event_id}
    with center.client("mike") as viewer:
        info = viewer.get(f"/api/v1/events/{event_id}/recording").json()
        assert info["url"] == f"/events/{event_id}/recording.mp4" and info["seconds"] == 12
        assert viewer.get(f"/events/{event_id}/recording.mp4").content == MP4
    with center.client("olga") as organizer:
        assert organizer.delete(f"/api/v1/events/{event_id}/recording").status_code == 204
        assert organizer.get(f"/events/{event_id}/recording.mp4").status_code == 404
    assert not (center.settings.data / "recordings" / str(event_id)).exists()
