"""The Manager's admin pages as a browser without JavaScript drives them."""

from __future__ import annotations

import httpx

from tests.manager.manager_support import API, signed_in
from tests.support import Center


def post_form(client: httpx.Client, path: str, data: dict[str, object]) -> httpx.Response:
    return client.post(path, data={**data, "csrf": client.cookies["townhall_csrf"]})


def test_an_admin_registers_servers_and_builds_a_tree_on_the_pages(center: Center) -> None:
    with signed_in(center, "ada") as ada:
        assert ada.get("/manager").headers["location"] == "/manager/servers"
        assert "No live server is registered yet." in ada.get("/manager/servers").text
        for name, host, zone in (
            ("main", "10.0.0.1", "internal"),
            ("hall", "hall.example.org", "internal"),
            ("edge", "2001:db8::5", "dmz"),
        ):
            added = post_form(
                ada,
                "/manager/servers",
                {"name": name, "host": host, "port": "9443", "zone": zone, "capacity": "300"},
            )
            assert added.status_code == 303, added.text
        listing = ada.get("/manager/servers?done=server_added")
        assert "The server is registered." in listing.text
        assert "[2001:db8::5]:9443" in listing.text and "not enrolled" in listing.text

        refused = post_form(
            ada,
            "/manager/servers",
            {
                "name": "main",
                "host": "10.0.0.9",
                "port": "9443",
                "zone": "internal",
                "capacity": "1",
            },
        )
        assert refused.status_code == 409 and "already exists" in refused.text
        for bad in (
            {"name": "bad name", "host": "10.0.0.9", "port": "9443", "capacity": "1"},
            {"name": "x", "host": "not a host", "port": "9443", "capacity": "1"},
            {"name": "x", "host": "10.0.0.9", "port": "99999", "capacity": "1"},
            {"name": "x", "host": "10.0.0.9", "port": "nine", "capacity": "1"},
            {"name": "x", "host": "10.0.0.9", "port": "9443", "capacity": "0"},
            {"name": "x", "host": "10.0.0.9", "port": "9443", "capacity": "1", "zone": "moon"},
        ):
            page = post_form(ada, "/manager/servers", bad)
            assert page.status_code == 422, (bad, page.text)
            assert "Please check" in page.text

        with center.client("ada") as api:
            servers = {s["name"]: s["id"] for s in api.get(f"{API}/servers").json()}
        assert set(servers) == {"main", "hall", "edge"}
        saved = post_form(
            ada,
            f"/manager/servers/{servers['hall']}",
            {"host": "hall2.example.org", "port": "443", "zone": "internal", "capacity": "900"},
        )
        assert saved.status_code == 303
        assert "hall2.example.org" in ada.get(saved.headers["location"]).text
        bad_save = post_form(
            ada,
            f"/manager/servers/{servers['hall']}",
            {"host": "hall2.example.org", "port": "0", "zone": "internal", "capacity": "900"},
        )
        assert bad_save.status_code == 422

        created = post_form(ada, "/manager/trees", {"name": "campus"})
        assert created.status_code == 303, created.text
        tree_url = created.headers["location"].split("?")[0]
        assert "No servers in this tree yet." in ada.get(tree_url).text
        assert post_form(ada, "/manager/trees", {"name": "campus"}).status_code == 409
        assert post_form(ada, "/manager/trees", {"name": "no spaces"}).status_code == 422

        rows = {"server": ["main", "hall", "edge"], "parent": [":main", "main", "hall"]}
        built = post_form(ada, tree_url, {"name": "campus", **rows})
        assert built.status_code == 303, built.text
        page = ada.get(built.headers["location"]).text
        assert "The tree is saved." in page
        # Each row shows its server's place: only edge is a child of hall.
        assert page.count('<option value="hall" selected>child of hall</option>') == 1
        assert page.count('<option value=":main" selected>main server</option>') == 1

        two_mains = post_form(
            ada,
            tree_url,
            {"name": "campus", "server": ["main", "hall"], "parent": [":main", ":main"]},
        )
        assert two_mains.status_code == 422 and "one main server" in two_mains.text
        cycle = post_form(
            ada,
            tree_url,
            {
                "name": "campus",
                "server": ["main", "hall", "edge"],
                "parent": [":main", "edge", "hall"],
            },
        )
        assert cycle.status_code == 422 and "cycle" in cycle.text
        uneven = post_form(ada, tree_url, {"name": "campus", "server": ["main"], "parent": []})
        assert uneven.status_code == 400

        with center.client("ada") as api:
            tree = api.get(f"{API}/trees").json()[0]
        assert [(n["server"], n["parent"]) for n in tree["nodes"]] == [
            ("main", None),
            ("hall", "main"),
            ("edge", "hall"),
        ]

        made_default = post_form(ada, f"{tree_url}/default", {})
        assert made_default.status_code == 303
        assert "This is now the default tree." in ada.get(made_default.headers["location"]).text

        in_use = post_form(ada, f"/manager/servers/{servers['edge']}/delete", {})
        assert in_use.status_code == 409 and "take it out first" in in_use.text
        assert post_form(ada, f"{tree_url}/delete", {}).status_code == 303
        assert post_form(ada, f"/manager/servers/{servers['edge']}/delete", {}).status_code == 303
        assert ada.get("/manager/servers/99999").status_code == 404
        assert ada.get("/manager/trees/0").status_code == 422


def test_the_manager_pages_are_for_admins_only(center: Center) -> None:
    anonymous = httpx.Client(base_url=center.url, follow_redirects=False, timeout=20)
    with anonymous:
        for path in ("/manager", "/manager/servers", "/manager/trees"):
            response = anonymous.get(path)
            assert response.status_code == 303 and response.headers["location"].startswith("/login")
    with signed_in(center, "olga") as olga:
        for path in ("/manager", "/manager/servers", "/manager/trees"):
            assert olga.get(path).status_code == 403
        forged = post_form(
            olga,
            "/manager/servers",
            {"name": "x", "host": "10.0.0.1", "port": "1", "zone": "internal", "capacity": "1"},
        )
        assert forged.status_code == 403
    with signed_in(center, "ada") as ada:
        no_csrf = ada.post("/manager/trees", data={"name": "t"})
        assert no_csrf.status_code == 403
        with center.client("ada") as api:
            assert api.get(f"{API}/servers").json() == []
            assert api.get(f"{API}/trees").json() == []
