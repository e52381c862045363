"""The REST API as its users drive it: scheduling, catalog, registration, tokens, bad input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import update

from tests.support import Center
from townhall.center.tables import User


def soon(days: int = 3, hour: int = 14) -> str:
    moment = (datetime.now(UTC) + timedelta(days=days)).replace(
        hour=hour, minute=0, second=0, microsecond=0
    )
    return moment.isoformat()


def new_event(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Quarterly review",
        "description": "Numbers and plans",
        "starts_at": soon(),
        "duration_minutes": 60,
        "kind": "meeting",
        "visibility": "private",
        "invitees": ["guest@example.com"],
    }
    body.update(overrides)
    return body


def test_healthz_answers_when_the_database_is_up(center: Center) -> None:
    response = httpx.get(center.url + "/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_openapi_document_lists_the_event_routes(center: Center) -> None:
    document = httpx.get(center.url + "/api/v1/openapi.json").json()
    assert "/api/v1/events" in document["paths"]
    assert "post" in document["paths"]["/api/v1/events"]
    assert "/api/v1/me" in document["paths"]
    assert not any(path.startswith("/events") for path in document["paths"])


def test_openapi_document_lists_the_catalogs_query_parameters(center: Center) -> None:
    document = httpx.get(center.url + "/api/v1/openapi.json").json()
    parameters = {p["name"]: p for p in document["paths"]["/api/v1/events"]["get"]["parameters"]}
    assert list(parameters) == ["q", "when", "from", "to", "include_cancelled", "limit", "offset"]
    assert all(p["in"] == "query" and not p["required"] for p in parameters.values())
    assert parameters["limit"]["schema"]["maximum"] == 200
    assert parameters["when"]["schema"]["enum"] == ["upcoming", "past", "all"]


def test_the_catalog_takes_a_repeated_parameters_last_value_and_ignores_unknown_ones(
    center: Center,
) -> None:
    with center.client("olga") as client:
        for title in ("First", "Second", "Third"):
            created = client.post(
                "/api/v1/events", json=new_event(title=title, visibility="public")
            )
            assert created.status_code == 201
        page = client.get("/api/v1/events?limit=0&limit=2&colour=blue")
        assert page.status_code == 200
        assert page.json()["limit"] == 2 and len(page.json()["items"]) == 2
        assert client.get("/api/v1/events?limit=2&limit=0").status_code == 422


def test_me_names_the_token_holder(center: Center) -> None:
    with center.client("olga") as client:
        me = client.get("/api/v1/me").json()
    assert me["username"] == "olga"
    assert me["role"] == "organizer"
    assert me["signed_in_via"] == "token"


def test_anonymous_and_bad_tokens_are_refused_with_json(center: Center) -> None:
    response = httpx.get(center.url + "/api/v1/events")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_signed_in"
    response = httpx.get(center.url + "/api/v1/me", headers={"Authorization": "Bearer th_nope"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "bad_token"
    response = httpx.get(center.url + "/api/v1/me", headers={"Authorization": "Basic eDp5"})
    assert response.status_code == 401
    # The catalog and an event ask who is there inside their route (web.deps.in_one_hop).
    response = httpx.get(center.url + "/api/v1/events/1")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_signed_in"
    bad = {"Authorization": "Bearer th_nope"}
    for path in ("/api/v1/events", "/api/v1/events/1"):
        response = httpx.get(center.url + path, headers=bad)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "bad_token"


def test_organizer_creates_an_event_and_is_its_moderator(center: Center) -> None:
    with center.client("olga") as client:
        response = client.post("/api/v1/events", json=new_event(moderators=["mike"]))
    assert response.status_code == 201, response.text
    event = response.json()
    assert isinstance(event["id"], int)
    assert event["organizer"] == "olga"
    assert set(event["moderators"]) == {"olga", "mike"}
    assert event["invitees"] == ["guest@example.com"]
    assert event["status"] == "scheduled"
    assert event["sequence"] == 0
    start = datetime.fromisoformat(event["starts_at"])
    assert start.utcoffset() == timedelta(0)
    assert datetime.fromisoformat(event["ends_at"]) - start == timedelta(minutes=60)


def test_start_with_an_offset_is_kept_as_the_same_instant(center: Center) -> None:
    with center.client("olga") as client:
        event = client.post(
            "/api/v1/events", json=new_event(starts_at="2031-03-05T09:30:00+02:00")
        ).json()
    assert event["starts_at"] == "2031-03-05T07:30:00Z"


def test_members_may_not_schedule(center: Center) -> None:
    with center.client("mike") as client:
        response = client.post("/api/v1/events", json=new_event())
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "not_organizer"


def test_private_events_exist_only_for_their_people(center: Center) -> None:
    with center.client("olga") as olga, center.client("mike") as mike:
        private = olga.post("/api/v1/events", json=new_event(title="Secret plans")).json()
        public = olga.post(
            "/api/v1/events", json=new_event(title="Town meeting", visibility="public")
        ).json()
        titles = [e["title"] for e in mike.get("/api/v1/events").json()["items"]]
        assert titles == ["Town meeting"]
        assert mike.get(f"/api/v1/events/{private['id']}").status_code == 404
        assert mike.get(f"/api/v1/events/{public['id']}").status_code == 200
        # Once invited, the private event appears for mike.
        olga.patch(
            f"/api/v1/events/{private['id']}",
            json={"invitees": ["guest@example.com", "mike@example.org"]},
        )
        assert mike.get(f"/api/v1/events/{private['id']}").status_code == 200
        assert mike.get(f"/api/v1/events/{private['id']}").json()["my_registration"] == "registered"


def test_catalog_searches_text_and_filters_dates(center: Center) -> None:
    with center.client("olga") as client:
        for title, days in (("Budget talk", 2), ("Budget vote", 20), ("Holiday party", 5)):
            client.post(
                "/api/v1/events",
                json=new_event(title=title, starts_at=soon(days), visibility="public"),
            )
        found = client.get("/api/v1/events", params={"q": "budget"}).json()
        assert [e["title"] for e in found["items"]] == ["Budget talk", "Budget vote"]
        assert found["has_more"] is False
        window_end = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
        found = client.get("/api/v1/events", params={"q": "budget", "to": window_end}).json()
        assert [e["title"] for e in found["items"]] == ["Budget talk"]
        paged = client.get("/api/v1/events", params={"limit": 1, "offset": 1}).json()
        assert [e["title"] for e in paged["items"]] == ["Holiday party"]
        assert paged["has_more"] is True
        last = client.get("/api/v1/events", params={"limit": 1, "offset": 2}).json()
        assert last["has_more"] is False and [e["title"] for e in last["items"]] == ["Budget vote"]
        # Any case matches (SQLite gets LIKE, PostgreSQL ILIKE: the same rows).
        shouted = client.get("/api/v1/events", params={"q": "BUDGET vO"}).json()
        assert [e["title"] for e in shouted["items"]] == ["Budget vote"]
        # Search text is text, not a pattern.
        assert client.get("/api/v1/events", params={"q": "%"}).json()["items"] == []
        assert client.get("/api/v1/events", params={"q": "Budget_"}).json()["items"] == []


def test_past_events_are_listed_apart(center: Center) -> None:
    with center.client("olga") as client:
        client.post(
            "/api/v1/events", json=new_event(title="Last year", starts_at="2021-01-01T10:00:00Z")
        )
        client.post("/api/v1/events", json=new_event(title="Next week"))
        upcoming = [e["title"] for e in client.get("/api/v1/events").json()["items"]]
        past = [e["title"] for e in client.get("/api/v1/events?when=past").json()["items"]]
    assert upcoming == ["Next week"]
    assert past == ["Last year"]


def test_updates_bump_the_calendar_sequence_and_cancel_keeps_the_event(center: Center) -> None:
    with center.client("olga") as client:
        event = client.post("/api/v1/events", json=new_event()).json()
        changed = client.patch(
            f"/api/v1/events/{event['id']}",
            json={"title": "Quarterly review (moved)", "starts_at": soon(4)},
        ).json()
        assert changed["sequence"] == 1
        assert changed["title"] == "Quarterly review (moved)"
        same = client.patch(f"/api/v1/events/{event['id']}", json={"recording": True}).json()
        assert same["sequence"] == 1 and same["recording"] is True
        cancelled = client.delete(f"/api/v1/events/{event['id']}").json()
        assert cancelled["status"] == "cancelled" and cancelled["sequence"] == 2
        refused = client.patch(f"/api/v1/events/{event['id']}", json={"title": "again"})
        assert refused.status_code == 409
        assert client.get("/api/v1/events").json()["items"] == []
        listed = client.get("/api/v1/events", params={"include_cancelled": "true"}).json()
        assert listed["items"][0]["status"] == "cancelled"


def test_only_managers_change_an_event(center: Center) -> None:
    with center.client("olga") as olga, center.client("mike") as mike:
        event = olga.post("/api/v1/events", json=new_event(visibility="public")).json()
        assert (
            mike.patch(f"/api/v1/events/{event['id']}", json={"title": "mine"}).status_code == 403
        )
        assert mike.delete(f"/api/v1/events/{event['id']}").status_code == 403
        assert mike.get(f"/api/v1/events/{event['id']}/registrations").status_code == 403


def test_self_registration_on_public_events_and_revocation(center: Center) -> None:
    with center.client("olga") as olga, center.client("mike") as mike:
        public = olga.post("/api/v1/events", json=new_event(visibility="public")).json()
        private = olga.post("/api/v1/events", json=new_event()).json()
        mine = mike.post(f"/api/v1/events/{public['id']}/registrations", json={})
        assert mine.status_code == 201
        assert mine.json()["username"] == "mike" and mine.json()["source"] == "self"
        assert (
            mike.post(f"/api/v1/events/{private['id']}/registrations", json={}).status_code == 404
        )
        listing = olga.get(f"/api/v1/events/{public['id']}/registrations").json()
        assert {r["email"] for r in listing} == {"guest@example.com", "mike@example.org"}
        revoked = olga.delete(f"/api/v1/events/{public['id']}/registrations/{mine.json()['id']}")
        assert revoked.json()["status"] == "revoked"
        again = mike.post(f"/api/v1/events/{public['id']}/registrations", json={})
        assert again.status_code == 403
        assert again.json()["error"]["code"] == "registration_revoked"


def test_managers_register_guests_by_email(center: Center) -> None:
    with center.client("olga") as olga:
        event = olga.post("/api/v1/events", json=new_event(invitees=[])).json()
        added = olga.post(
            f"/api/v1/events/{event['id']}/registrations",
            json={"email": "Visitor@Example.com", "display_name": "A Visitor"},
        )
        assert added.status_code == 201
        assert added.json()["email"] == "visitor@example.com"
        assert added.json()["username"] is None


def test_dialin_gives_numbers_and_a_stable_access_code(center: Center) -> None:
    with center.client("olga") as olga:
        event = olga.post("/api/v1/events", json=new_event(audio_mode="both")).json()
        first = olga.get(f"/api/v1/events/{event['id']}/dialin").json()
        second = olga.get(f"/api/v1/events/{event['id']}/dialin").json()
    assert first == second
    assert first["numbers"] == ["+1 555 0100"]
    assert len(first["access_code"]) == 8 and first["access_code"].isdigit()


def test_tokens_are_listed_and_revoked(center: Center) -> None:
    with center.client("mike") as mike:
        created = mike.post("/api/v1/tokens", json={"name": "laptop"})
        assert created.status_code == 201
        token = created.json()["token"]
        assert token.startswith("th_")
        with httpx.Client(
            base_url=center.url, headers={"Authorization": f"Bearer {token}"}
        ) as laptop:
            assert laptop.get("/api/v1/me").json()["username"] == "mike"
            listed = laptop.get("/api/v1/tokens").json()
            assert "laptop" in [t["name"] for t in listed]
            assert all("token" not in t for t in listed)
            assert mike.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 204
            assert laptop.get("/api/v1/me").status_code == 401
    with center.client("olga") as olga:
        assert olga.delete(f"/api/v1/tokens/{created.json()['id']}").status_code == 404


def test_a_token_records_its_last_use_and_stops_with_its_account(center: Center) -> None:
    with center.client("mike") as mike:
        assert mike.get("/api/v1/me").json()["username"] == "mike"
        listed = mike.get("/api/v1/tokens").json()
        used = [t["last_used_at"] for t in listed if t["name"] == "test"]
        assert used and all(used), listed  # the test client's token, just used
        with center.sessions() as session:  # type: ignore[operator]
            session.execute(update(User).where(User.username == "mike").values(active=False))
            session.commit()
        refused = mike.get("/api/v1/me")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "bad_token"


def test_a_tokens_first_use_on_the_catalog_is_recorded(center: Center) -> None:
    # The catalog reads on the event loop on SQLite; recording the token's use is a write,
    # so the request is then done on a thread (web.deps.in_one_hop): it answers, and the
    # use is kept (the listing after it, within the minute, writes nothing itself).
    with center.client("mike") as mike:
        assert mike.get("/api/v1/events").status_code == 200
        listed = mike.get("/api/v1/tokens").json()
    assert [bool(t["last_used_at"]) for t in listed if t["name"] == "test"] == [True]


def test_a_write_that_does_not_announce_itself_is_still_done_on_a_thread(
    center: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The safety net under store.will_write: on SQLite the loop's connections are
    # query_only, so the UPDATE of the token's last use is refused there (no lock taken)
    # and the request is done again on a thread.
    monkeypatch.setattr("townhall.center.accounts.will_write", lambda session: None)
    with center.client("mike") as mike:
        assert mike.get("/api/v1/events").status_code == 200
        listed = mike.get("/api/v1/tokens").json()
    assert [bool(t["last_used_at"]) for t in listed if t["name"] == "test"] == [True]


BAD_EVENTS = [
    ({"title": ""}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "two\nlines"}, "title"),
    ({"title": "bell\x07"}, "title"),
    ({"starts_at": "2030-01-01T10:00:00"}, "starts_at"),
    ({"starts_at": "tomorrow"}, "starts_at"),
    ({"starts_at": "1970-01-01T00:00:00Z"}, "starts_at"),
    ({"starts_at": 12}, "starts_at"),
    ({"duration_minutes": 0}, "duration_minutes"),
    ({"duration_minutes": 10**12}, "duration_minutes"),
    ({"duration_minutes": "long"}, "duration_minutes"),
    ({"kind": "party"}, "kind"),
    ({"visibility": "secret"}, "visibility"),
    ({"audio_mode": "radio"}, "audio_mode"),
    ({"invitees": ["not-an-email"]}, "invitees"),
    ({"invitees": "a@example.com"}, "invitees"),
    ({"invitees": ["a@example.com"] * 1001}, "invitees"),
    ({"timezone": "Mars/Olympus"}, "timezone"),
    ({"description": "d" * 10_001}, "description"),
    ({"surprise": 1}, "surprise"),
]


@pytest.mark.parametrize(("change", "field"), BAD_EVENTS)
def test_bad_event_fields_get_a_422_naming_the_field(
    center: Center, change: dict[str, object], field: str
) -> None:
    with center.client("olga") as client:
        response = client.post("/api/v1/events", json=new_event(**change))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_input"
    assert field in error["message"]


def test_missing_fields_and_unknown_people_are_named(center: Center) -> None:
    with center.client("olga") as client:
        response = client.post("/api/v1/events", json={"title": "x"})
        assert response.status_code == 422
        assert "starts_at" in response.json()["error"]["message"]
        response = client.post("/api/v1/events", json=new_event(moderators=["nobody"]))
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "unknown_user"
        event = client.post("/api/v1/events", json=new_event()).json()
        response = client.patch(f"/api/v1/events/{event['id']}", json={"title": None})
        assert response.status_code == 422


def test_malformed_bodies_and_out_of_range_paths_are_4xx(center: Center) -> None:
    with center.client("olga") as client:
        event = client.post("/api/v1/events", json=new_event()).json()
        bad_json = client.post(
            "/api/v1/events", content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert bad_json.status_code == 400
        assert bad_json.json()["error"]["code"] == "invalid_json"
        assert client.post("/api/v1/events", json=[1, 2]).status_code == 422
        for path in (
            "/api/v1/events/0",
            "/api/v1/events/-1",
            "/api/v1/events/99999999999999999999",
            "/api/v1/events/abc",
            f"/api/v1/events/{event['id']}/registrations/99999999999",
            "/api/v1/tokens/0",
        ):
            response = client.request("DELETE" if "tokens" in path else "GET", path)
            assert 400 <= response.status_code < 500, (path, response.status_code)
            assert "error" in response.json()
        assert client.get(f"/api/v1/events/{event['id'] + 1000}").status_code == 404
        for params in (
            {"limit": 0},
            {"limit": 201},
            {"offset": -1},
            {"when": "soon"},
            {"from": "yesterday"},
            {"from": "2030-01-01T00:00:00"},
            {"q": "q" * 201},
            {"to": "9999-01-01"},
        ):
            response = client.get("/api/v1/events", params=params)
            assert response.status_code == 422, params
            assert response.json()["error"]["code"] == "invalid_input", params
        # The refusal names the parameter and what is wrong with it.
        too_many = client.get("/api/v1/events", params={"limit": 201}).json()["error"]
        assert too_many["message"] == "query.limit: Input should be less than or equal to 200"
        not_a_number = client.get("/api/v1/events?limit=ten").json()["error"]["message"]
        assert not_a_number.startswith("query.limit: Input should be a valid integer")
        assert (
            client.get("/api/v1/events", params={"from": "x" * 41})
            .json()["error"]["message"]
            .startswith("query.from: String should have at most 40 characters")
        )
        assert (
            client.post(
                f"/api/v1/events/{event['id']}/registrations", json={"email": "nope"}
            ).status_code
            == 422
        )
        assert client.post("/api/v1/tokens", json={"name": ""}).status_code == 422
        assert client.post("/api/v1/tokens", json={"name": "n" * 101}).status_code == 422


def test_oversized_bodies_are_refused_before_reading(center: Center) -> None:
    with center.client("olga") as client:
        response = client.post(
            "/api/v1/events",
            content=b"x" * (center.settings.center.max_body_bytes + 1),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"

        # Streamed without a length: counted as it arrives.
        def chunks():  # type: ignore[no-untyped-def]
            for _ in range(40):
                yield b"x" * 50_000

        response = client.post(
            "/api/v1/events", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 413
        assert client.get("/api/v1/me").status_code == 200


def test_a_catalog_entry_is_the_event_as_its_own_answer_gives_it(center: Center) -> None:
    """The catalog encodes its entries itself (for speed): they must stay EventOut's."""
    center.add_user("pia", role="organizer")
    with center.client("olga") as olga, center.client("mike") as mike:
        created = olga.post(
            "/api/v1/events",
            json=new_event(
                title="Ünïcode “quotes” \\ and a tab\there",
                description="line one\nline two",
                starts_at="2031-05-06T07:08:09.123456+02:00",
                visibility="public",
                moderators=["pia"],
                presenters=["mike"],
            ),
        ).json()
        listed = mike.get("/api/v1/events").json()["items"]
        single = mike.get(f"/api/v1/events/{created['id']}").json()
    del single["live"]
    assert listed == [single]
    assert single["starts_at"] == "2031-05-06T05:08:09.123456Z"
    assert single["moderators"] == ["olga", "pia"] and single["presenters"] == ["mike"]
    assert single["invitees"] is None and single["my_registration"] is None


def test_moderators_are_listed_by_name_in_the_catalog_the_event_and_its_page(
    center: Center,
) -> None:
    """Names in the order a reader looks them up, whatever order the accounts were made
    in and whatever the database's collation: by name, ignoring case, everywhere."""
    for name in ("Zed", "anna", "Bo"):
        center.add_user(name, role="organizer")
    with center.client("olga") as olga:
        created = olga.post(
            "/api/v1/events",
            json=new_event(visibility="public", moderators=["Zed", "Bo", "anna"]),
        ).json()
        listed = olga.get("/api/v1/events").json()["items"]
        single = olga.get(f"/api/v1/events/{created['id']}").json()
        page = olga.get(f"/events/{created['id']}").text
    expected = ["anna", "Bo", "olga", "Zed"]
    assert single["moderators"] == expected
    assert [item["moderators"] for item in listed] == [expected]
    assert "<dt>Moderators</dt><dd>anna, Bo, olga, Zed</dd>" in page
