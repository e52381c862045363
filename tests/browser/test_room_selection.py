"""selection.js ranks servers exactly as the Python participant's ``rank`` does."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests.browser.browser_support import StaticServer
from tests.browser.conftest import OpenBrowser
from townhall.client.selection import Probe, rank
from townhall.ticket import ServerEntry, Zone


def probe(name: str, zone: str, rtt: float | None, load: tuple[int, int] | None) -> Probe:
    entry = ServerEntry(name=name, host="127.0.0.1", port=9443, zone=Zone(zone))
    if rtt is None:
        return Probe(server=entry, reachable=False, error="timed out")
    participants, capacity = load if load is not None else (None, None)
    return Probe(
        server=entry, reachable=True, rtt_ms=rtt, participants=participants, capacity=capacity
    )


CASES: dict[str, list[Probe]] = {
    "the nearer of two": [
        probe("a", "internal", 9.0, (1, 100)),
        probe("b", "internal", 2.0, (1, 100)),
    ],
    "inside prefers internal": [
        probe("dmz", "dmz", 1.0, (0, 0)),
        probe("main", "internal", 8.0, (5, 100)),
    ],
    "outside gets the dmz": [
        probe("main", "internal", None, None),
        probe("dmz", "dmz", 30.0, None),
    ],
    "a full server last": [
        probe("full", "internal", 1.0, (100, 100)),
        probe("busy", "internal", 5.0, (85, 100)),
        probe("quiet", "internal", 9.0, (5, 100)),
        probe("unknown", "internal", 2.0, None),
    ],
    "load by tenths, then the trip": [
        probe("x", "dmz", 4.0, (31, 100)),
        probe("y", "dmz", 3.0, (39, 100)),
        probe("z", "dmz", 1.0, (41, 100)),
        probe("gone", "dmz", None, None),
    ],
    "ties keep the ticket's order": [probe("p", "dmz", 5.0, None), probe("q", "dmz", 5.0, None)],
}


def as_js(probes: list[Probe]) -> list[dict[str, Any]]:
    return [
        {
            "server": {"name": p.server.name, "zone": p.server.zone.value},
            "reachable": p.reachable,
            "rtt": p.rtt_ms,
            "load": None
            if p.participants is None
            else {"participants": p.participants, "capacity": p.capacity},
        }
        for p in probes
    ]


@pytest.fixture
def page(open_browser: OpenBrowser, static_server: StaticServer) -> Page:
    page = open_browser().new_page()
    page.goto(static_server.url + "/pages/media.html")
    return page


def test_js_ranks_every_case_as_python_does(page: Page) -> None:
    for case, probes in CASES.items():
        for zone in (None, Zone.DMZ):
            expected = [p.server.name for p in rank(probes, zone).probes]
            got = page.evaluate(
                """async ([probes, zone]) => (await import('/static/selection.js'))
                     .rank(probes, zone).map((p) => p.server.name)""",
                [as_js(probes), None if zone is None else zone.value],
            )
            assert got == expected, (case, zone)
