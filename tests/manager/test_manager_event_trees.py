"""Which tree serves an event: the default, an admin's choice, or the event managers' choice
on the Center's event page."""

from __future__ import annotations

import re

import httpx

from tests.manager.manager_support import (
    API,
    enrol,
    enrolment_secret,
    make_tree,
    register,
    schedule_event,
    signed_in,
)
from tests.support import Center


def choose_on_page(client: httpx.Client, event_id: int, tree_id: str) -> httpx.Response:
    return client.post(
        f"/events/{event_id}/tree",
        data={"tree_id": tree_id, "csrf": client.cookies["townhall_csrf"]},
    )


def test_an_event_uses_the_default_tree_until_an_admin_chooses_another(center: Center) -> None:
    event_id = schedule_event(center)
    with center.client("ada") as ada:
        for name, zone in (("main", "internal"), ("hall", "internal"), ("edge", "dmz")):
            register(ada, name, zone=zone)
        campus = make_tree(ada, "campus", [("main", None), ("hall", "main"), ("edge", "hall")])
        public = make_tree(ada, "public", [("edge", None)])
        url = f"{API}/events/{event_id}/tree"

        none_yet = ada.get(url)
        assert none_yet.status_code == 404 and none_yet.json()["error"]["code"] == "no_tree"
        ada.post(f"{API}/trees/{campus['id']}/default")
        default = ada.get(url).json()
        assert default["tree"] == "campus" and default["chosen"] is False
        assert default["is_default"] is True and default["main"] == "main"
        assert [(n["server"], n["parent"], n["depth"], n["zone"]) for n in default["nodes"]] == [
            ("main", None, 0, "internal"),
            ("hall", "main", 1, "internal"),
            ("edge", "hall", 2, "dmz"),
        ]

        chosen = ada.put(url, json={"tree_id": public["id"]})
        assert chosen.status_code == 200, chosen.text
        assert chosen.json()["tree"] == "public" and chosen.json()["chosen"] is True
        assert ada.get(url).json()["tree_id"] == public["id"]
        # Other events are not touched.
        assert ada.get(f"{API}/events/{event_id + 1}/tree").json()["tree"] == "campus"

        back = ada.put(url, json={"tree_id": None})
        assert back.json()["tree"] == "campus" and back.json()["chosen"] is False

        # Deleting a chosen tree sends its events back to the default tree.
        ada.put(url, json={"tree_id": public["id"]})
        assert ada.delete(f"{API}/trees/{public['id']}").status_code == 204
        assert ada.get(url).json()["tree"] == "campus"

    with center.client("olga") as olga:
        refused = olga.put(url, json={"tree_id": campus["id"]})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_admin"


def test_event_managers_choose_the_tree_on_the_centers_event_page(center: Center) -> None:
    event_id = schedule_event(center, "olga")
    with center.client("ada") as ada:
        register(ada, "main")
        register(ada, "edge", zone="dmz")
        campus = make_tree(ada, "campus", [("main", None), ("edge", "main")])
        public = make_tree(ada, "public", [("edge", None)])
        ada.post(f"{API}/trees/{campus['id']}/default")

    with signed_in(center, "olga") as olga:
        page = olga.get(f"/events/{event_id}")
        assert page.status_code == 200
        assert "Server tree" in page.text
        assert re.search(
            r'<option value="" selected>the default tree \(campus\)</option>', page.text
        )
        assert f'<option value="{public["id"]}">public</option>' in page.text

        saved = choose_on_page(olga, event_id, str(public["id"]))
        assert saved.status_code == 303, saved.text
        assert saved.headers["location"] == f"/events/{event_id}?done=tree"
        page = olga.get(saved.headers["location"])
        assert "The event&#39;s server tree is saved." in page.text
        assert f'<option value="{public["id"]}" selected>public</option>' in page.text
        with center.client("ada") as ada:
            answer = ada.get(f"{API}/events/{event_id}/tree").json()
            assert answer["tree"] == "public" and answer["chosen"] is True

        for bad in ("abc", "0", "-1", "2147483648", "99999", " 1e3"):
            refused = choose_on_page(olga, event_id, bad)
            assert refused.status_code == 422, (bad, refused.text)
        stale = olga.post(
            f"/events/{event_id}/tree", data={"tree_id": "", "csrf": "forged-token-value-123"}
        )
        assert stale.status_code == 403

        back = choose_on_page(olga, event_id, "")
        assert back.status_code == 303
        with center.client("ada") as ada:
            assert ada.get(f"{API}/events/{event_id}/tree").json()["chosen"] is False

    # Someone who does not manage the event sees no tree choice and cannot make one.
    with signed_in(center, "mike") as mike:
        assert choose_on_page(mike, event_id, str(public["id"])).status_code in (403, 404)
    with center.client("olga") as api:
        api.post(f"/api/v1/events/{event_id}/registrations", json={"email": "mike@example.org"})
    with signed_in(center, "mike") as mike:
        page = mike.get(f"/events/{event_id}")
        assert page.status_code == 200 and "Server tree" not in page.text
        assert choose_on_page(mike, event_id, str(public["id"])).status_code == 403
    with center.client("ada") as ada:
        assert ada.get(f"{API}/events/{event_id}/tree").json()["chosen"] is False


def test_the_manager_nav_link_is_shown_to_admins_only(center: Center) -> None:
    with signed_in(center, "ada") as ada:
        assert 'href="/manager/servers"' in ada.get("/events").text
    with signed_in(center, "olga") as olga:
        assert 'href="/manager/servers"' not in olga.get("/events").text


def test_servers_read_the_tree_of_an_event_they_serve_with_their_pull_token(
    center: Center,
) -> None:
    event_id = schedule_event(center)
    with center.client("ada") as ada:
        register(ada, "main")
        register(ada, "other")
        tree = make_tree(ada, "campus", [("main", None)])
        ada.put(f"{API}/events/{event_id}/tree", json={"tree_id": tree["id"]})
    tokens = {
        name: enrol(center, name, enrolment_secret(center, name)).json()["pull_token"]
        for name in ("main", "other")
    }
    url = f"{center.url}{API}/events/{event_id}/tree"
    inside = httpx.get(url, headers={"Authorization": f"Bearer {tokens['main']}"}, timeout=20)
    assert inside.status_code == 200 and inside.json()["main"] == "main"
    outside = httpx.get(url, headers={"Authorization": f"Bearer {tokens['other']}"}, timeout=20)
    assert outside.status_code == 403 and outside.json()["error"]["code"] == "not_in_tree"
    forged = httpx.get(url, headers={"Authorization": "Bearer thp_forged"}, timeout=20)
    assert forged.status_code == 401 and forged.json()["error"]["code"] == "bad_pull_token"
    # A pull token cannot choose trees.
    choose = httpx.put(
        url, json={"tree_id": None}, headers={"Authorization": f"Bearer {tokens['main']}"}
    )
    assert choose.status_code == 401
