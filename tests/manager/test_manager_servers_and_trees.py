"""Servers and server trees through the Manager's API, against a real Center process."""

from __future__ import annotations

from typing import Any

import httpx

from tests.manager.manager_support import API, make_tree, register
from tests.support import Center


def refusal(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


def test_an_admin_registers_servers_changes_them_and_lists_them(center: Center) -> None:
    with center.client("ada") as ada:
        main = register(ada, "main-1", host="Live1.Example.ORG.", port=443, capacity=2000)
        assert main["host"] == "live1.example.org"
        assert main["zone"] == "internal"
        assert main["enrolment"] == "new" and main["enrolled_at"] is None
        edge = register(ada, "edge_1", host="[2001:db8::7]", zone="dmz")
        assert edge["host"] == "2001:db8::7" and edge["zone"] == "dmz"

        listed = ada.get(f"{API}/servers").json()
        assert [s["name"] for s in listed] == ["edge_1", "main-1"]

        changed = ada.patch(f"{API}/servers/{main['id']}", json={"capacity": 3000, "zone": "dmz"})
        assert changed.status_code == 200, changed.text
        assert changed.json()["capacity"] == 3000 and changed.json()["zone"] == "dmz"
        assert ada.get(f"{API}/servers/{main['id']}").json()["host"] == "live1.example.org"

        again = ada.post(
            f"{API}/servers", json={"name": "main-1", "host": "10.0.0.9", "port": 9443}
        )
        refusal(again, 409, "server_name_taken")


def test_a_three_level_tree_resolves_main_first_with_parents_and_depths(center: Center) -> None:
    with center.client("ada") as ada:
        for name, zone in (
            ("main", "internal"),
            ("dmz", "dmz"),
            ("hall", "internal"),
            ("room", "internal"),
        ):
            register(ada, name, zone=zone)
        # Listed leaves first: the node list is checked as a whole, not in order.
        tree = make_tree(
            ada,
            "campus",
            [("room", "hall"), ("hall", "main"), ("dmz", "main"), ("main", None)],
        )
        assert tree["main"] == "main" and tree["is_default"] is False
        assert [(n["server"], n["parent"], n["depth"]) for n in tree["nodes"]] == [
            ("main", None, 0),
            ("dmz", "main", 1),
            ("hall", "main", 1),
            ("room", "hall", 2),
        ]
        assert tree["nodes"][1]["zone"] == "dmz" and tree["nodes"][1]["port"] == 9443

        assert ada.get(f"{API}/trees/{tree['id']}").json() == tree
        hall = next(s for s in ada.get(f"{API}/servers").json() if s["name"] == "hall")
        assert hall["trees"] == ["campus"]

        # A fourth level, and a new name, by replacing the node list.
        register(ada, "booth")
        deeper = ada.put(
            f"{API}/trees/{tree['id']}",
            json={
                "name": "campus-2",
                "nodes": [
                    {"server": "main", "parent": None},
                    {"server": "hall", "parent": "main"},
                    {"server": "room", "parent": "hall"},
                    {"server": "booth", "parent": "room"},
                ],
            },
        )
        assert deeper.status_code == 200, deeper.text
        assert deeper.json()["name"] == "campus-2"
        assert [(n["server"], n["depth"]) for n in deeper.json()["nodes"]] == [
            ("main", 0),
            ("hall", 1),
            ("room", 2),
            ("booth", 3),
        ]


def test_trees_refuse_cycles_two_mains_foreign_parents_and_repeated_servers(
    center: Center,
) -> None:
    with center.client("ada") as ada:
        for name in ("a", "b", "c", "d"):
            register(ada, name)
        tree = make_tree(ada, "good", [("a", None), ("b", "a")])
        other = make_tree(ada, "other", [("c", None), ("d", "c")])

        def put(nodes: list[tuple[str, str | None]]) -> httpx.Response:
            body = {"nodes": [{"server": s, "parent": p} for s, p in nodes]}
            return ada.put(f"{API}/trees/{tree['id']}", json=body)

        refusal(put([("a", None), ("b", "c"), ("c", "b")]), 422, "cycle")
        refusal(put([("a", "a")]), 422, "no_main")
        refusal(put([("a", "b"), ("b", "a")]), 422, "no_main")
        refusal(put([("a", None), ("b", None)]), 422, "two_mains")
        # d's parent c is a server, but in another tree, not this one.
        refusal(put([("a", None), ("d", "c")]), 422, "foreign_parent")
        refusal(put([("a", None), ("b", "a"), ("b", "a")]), 422, "duplicate_server")
        refusal(put([("a", None), ("ghost", "a")]), 422, "unknown_server")
        refusal(
            ada.post(
                f"{API}/trees", json={"name": "bad", "nodes": [{"server": "a"}, {"server": "b"}]}
            ),
            422,
            "two_mains",
        )
        refusal(ada.post(f"{API}/trees", json={"name": "other"}), 409, "tree_name_taken")
        refusal(
            ada.put(f"{API}/trees/{tree['id']}", json={"name": "other", "nodes": []}),
            409,
            "tree_name_taken",
        )

        # Nothing of the refused lists was kept.
        assert ada.get(f"{API}/trees/{tree['id']}").json() == tree
        assert ada.get(f"{API}/trees/{other['id']}").json() == other
        assert [t["name"] for t in ada.get(f"{API}/trees").json()] == ["good", "other"]

        # An empty tree is allowed (it is being built), and has no main.
        emptied = put([])
        assert emptied.status_code == 200 and emptied.json()["main"] is None


def test_one_tree_at_a_time_is_the_default(center: Center) -> None:
    with center.client("ada") as ada:
        register(ada, "s1")
        first = make_tree(ada, "first", [("s1", None)])
        second = make_tree(ada, "second", [("s1", None)])

        def defaults() -> list[str]:
            return [t["name"] for t in ada.get(f"{API}/trees").json() if t["is_default"]]

        assert defaults() == []
        made = ada.post(f"{API}/trees/{first['id']}/default")
        assert made.status_code == 200 and made.json()["is_default"] is True
        assert defaults() == ["first"]
        ada.post(f"{API}/trees/{second['id']}/default")
        assert defaults() == ["second"]
        ada.post(f"{API}/trees/{second['id']}/default")
        assert defaults() == ["second"]


def test_a_server_in_a_tree_cannot_be_deleted_until_taken_out(center: Center) -> None:
    with center.client("ada") as ada:
        main = register(ada, "main")
        child = register(ada, "child")
        tree = make_tree(ada, "t", [("main", None), ("child", "main")])
        refusal(ada.delete(f"{API}/servers/{child['id']}"), 409, "server_in_use")
        ada.put(f"{API}/trees/{tree['id']}", json={"nodes": [{"server": "main", "parent": None}]})
        assert ada.delete(f"{API}/servers/{child['id']}").status_code == 204
        refusal(ada.get(f"{API}/servers/{child['id']}"), 404, "server_not_found")
        assert ada.delete(f"{API}/trees/{tree['id']}").status_code == 204
        refusal(ada.get(f"{API}/trees/{tree['id']}"), 404, "tree_not_found")
        assert ada.delete(f"{API}/servers/{main['id']}").status_code == 204
        assert ada.get(f"{API}/servers").json() == []


def test_only_admins_manage_servers_and_trees(center: Center) -> None:
    with center.client("ada") as ada:
        server = register(ada, "s1")
        tree = make_tree(ada, "t", [("s1", None)])
    routes: list[tuple[str, str, Any]] = [
        ("GET", "/servers", None),
        ("POST", "/servers", {"name": "s2", "host": "10.0.0.2", "port": 9443}),
        ("GET", f"/servers/{server['id']}", None),
        ("PATCH", f"/servers/{server['id']}", {"capacity": 1}),
        ("DELETE", f"/servers/{server['id']}", None),
        ("GET", "/trees", None),
        ("POST", "/trees", {"name": "t2"}),
        ("GET", f"/trees/{tree['id']}", None),
        ("PUT", f"/trees/{tree['id']}", {"nodes": []}),
        ("DELETE", f"/trees/{tree['id']}", None),
        ("POST", f"/trees/{tree['id']}/default", None),
        ("GET", "/events/1/tree", None),
        ("PUT", "/events/1/tree", {"tree_id": tree["id"]}),
    ]
    anonymous = httpx.Client(base_url=center.url, timeout=20)
    with center.client("olga") as olga, center.client("mike") as mike, anonymous:
        for method, path, body in routes:
            for client in (olga, mike):
                refusal(client.request(method, API + path, json=body), 403, "not_admin")
            refusal(anonymous.request(method, API + path, json=body), 401, "not_signed_in")
            bad_token = {"Authorization": "Bearer th_not-a-token"}
            refusal(
                anonymous.request(method, API + path, json=body, headers=bad_token),
                401,
                "bad_token",
            )
    with center.client("ada") as ada:
        assert [s["name"] for s in ada.get(f"{API}/servers").json()] == ["s1"]
        assert ada.get(f"{API}/trees/{tree['id']}").json() == tree


def test_bad_input_on_every_route_gets_a_4xx_json_error_and_never_a_5xx(center: Center) -> None:
    with center.client("ada") as ada:
        server = register(ada, "s1")
        tree = make_tree(ada, "t", [("s1", None)])
        sid, tid = server["id"], tree["id"]
        good = {"name": "s9", "host": "10.0.0.9", "port": 9443}
        cases: list[tuple[str, str, Any]] = [
            ("POST", "/servers", {}),
            ("POST", "/servers", [good]),
            ("POST", "/servers", {**good, "name": "bad name"}),
            ("POST", "/servers", {**good, "name": "x" * 65}),
            ("POST", "/servers", {**good, "name": ""}),
            ("POST", "/servers", {**good, "name": "caf\u00e9"}),
            ("POST", "/servers", {**good, "host": "exa mple.org"}),
            ("POST", "/servers", {**good, "host": "-bad.example.org"}),
            ("POST", "/servers", {**good, "host": "10.0.0.999"}),
            ("POST", "/servers", {**good, "host": "0.0.0.0"}),
            ("POST", "/servers", {**good, "host": "fe80::1%eth0"}),
            ("POST", "/servers", {**good, "host": "a" * 300}),
            ("POST", "/servers", {**good, "host": ("a" * 63 + ".") * 4 + "org"}),
            ("POST", "/servers", {**good, "host": ""}),
            ("POST", "/servers", {**good, "port": 0}),
            ("POST", "/servers", {**good, "port": 65536}),
            ("POST", "/servers", {**good, "port": "https"}),
            ("POST", "/servers", {**good, "port": 10**30}),
            ("POST", "/servers", {**good, "zone": "public"}),
            ("POST", "/servers", {**good, "capacity": 0}),
            ("POST", "/servers", {**good, "capacity": 100_001}),
            ("POST", "/servers", {**good, "capacity": 1.5}),
            ("POST", "/servers", {**good, "admin": True}),
            ("GET", "/servers/0", None),
            ("GET", "/servers/2147483648", None),
            ("GET", "/servers/abc", None),
            ("GET", "/servers/99999", None),
            ("PATCH", f"/servers/{sid}", {"name": "renamed"}),
            ("PATCH", f"/servers/{sid}", {"port": None}),
            ("PATCH", f"/servers/{sid}", {"capacity": -1}),
            ("PATCH", "/servers/99999", {"capacity": 1}),
            ("DELETE", "/servers/99999", None),
            ("DELETE", "/servers/-1", None),
            ("POST", "/trees", {"name": "t2", "nodes": "s1"}),
            ("POST", "/trees", {"name": "t2", "nodes": [{"server": "s1"}] * 1001}),
            ("POST", "/trees", {"name": "t2", "nodes": [{"server": "s 1"}]}),
            ("POST", "/trees", {"name": "t2", "nodes": [{"server": "s1", "parent": 7}]}),
            ("POST", "/trees", {"name": "t2", "nodes": [{"server": "s1", "depth": 0}]}),
            ("POST", "/trees", {"name": None}),
            ("GET", "/trees/0", None),
            ("GET", "/trees/99999", None),
            ("PUT", f"/trees/{tid}", {}),
            ("PUT", f"/trees/{tid}", {"nodes": None}),
            ("PUT", "/trees/99999", {"nodes": []}),
            ("DELETE", "/trees/99999", None),
            ("POST", "/trees/99999/default", None),
            ("POST", "/trees/abc/default", None),
            ("GET", "/events/0/tree", None),
            ("GET", "/events/2147483648/tree", None),
            ("GET", "/events/1/tree", None),  # no choice and no default tree yet
            ("PUT", "/events/1/tree", {}),
            ("PUT", "/events/1/tree", {"tree_id": 0}),
            ("PUT", "/events/1/tree", {"tree_id": 2**31}),
            ("PUT", "/events/1/tree", {"tree_id": "t"}),
            ("PUT", "/events/1/tree", {"tree_id": 99999}),
            ("PUT", "/events/99999999999/tree", {"tree_id": tid}),
            ("POST", "/enroll", {}),
            ("POST", "/enroll", {"name": "s1", "secret": "x" * 201, "csr_pem": "x"}),
            ("POST", "/enroll", {"name": "s1", "secret": "x", "csr_pem": "x" * 8193}),
            ("POST", "/enroll", {"name": "../s1", "secret": "x", "csr_pem": "x"}),
            ("POST", "/enroll", {"name": "s1", "secret": "", "csr_pem": "x"}),
            ("POST", "/enroll", {"name": "s1", "secret": "x", "csr_pem": "x"}),
            ("GET", "/self", None),
            ("GET", "/nowhere", None),
            ("PATCH", "/trees", {}),
        ]
        for method, path, body in cases:
            response = ada.request(method, API + path, json=body)
            assert 400 <= response.status_code < 500, (method, path, response.text)
            error = response.json()["error"]
            assert error["code"] and error["message"], (method, path, error)

        malformed = ada.post(
            f"{API}/servers", content=b'{"name": ', headers={"content-type": "application/json"}
        )
        refusal(malformed, 400, "invalid_json")
        huge = ada.post(
            f"{API}/enroll",
            content=b'{"csr_pem": "' + b"A" * 2_000_000 + b'"}',
            headers={"content-type": "application/json"},
        )
        refusal(huge, 413, "body_too_large")
        for header in ("Basic YWRhOnB3", "Bearer thp_unknown", "Bearer"):
            response = httpx.get(
                f"{center.url}{API}/self", headers={"Authorization": header}, timeout=20
            )
            assert response.status_code == 401, (header, response.text)

        # Refused input changed nothing.
        assert [s["name"] for s in ada.get(f"{API}/servers").json()] == ["s1"]
        assert ada.get(f"{API}/trees/{tid}").json() == tree
