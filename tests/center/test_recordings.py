"""An event's recording in the Center: who may watch it, ranges, deleting, recorder tickets.

A real Center over HTTP; the recording is put in the event's folder as the
recorder leaves it. An outsider of a private event is refused as if neither
existed, a Range request gets exactly its bytes (206), only the event's
managers may delete it or get a recorder ticket, and only while the event's
recording setting is on.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.support import Center

BODY = bytes(range(256)) * 40  # 10 KiB standing in for the WebM file


def schedule(center: Center, visibility: str, recording: bool = True) -> int:
    with center.client("olga") as olga:
        response = olga.post(
            "/api/v1/events",
            json={
                "title": f"A {visibility} meeting",
                "starts_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
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
        part = viewer.get(f"/events/{event_id}/recording.webm", headers={"Range": "bytes=1000-1999"})
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
