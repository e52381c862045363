"""Smoke test of bench/center_cpu.py: its three workloads, tiny, through the real code.

Checks that the catalog showed events to the bench's member and that every
request of the routes and every storm user's page and ticket were answered (the
bench exits non-zero on a refusal); no figure is checked (the machine's load
decides those).
"""

from __future__ import annotations

import json

from tests.bench.bench_support import run_bench


def test_every_workload_runs_and_every_request_is_answered() -> None:
    done = run_bench(
        "center_cpu.py",
        "--rounds=1",
        "--calls=5",
        "--users=5",
        "--events=300",
        "--registrations=1000",
        "--seed-users=100",
        "--json",
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    catalog, routes, storm_user = json.loads(done.stdout)
    assert catalog["workload"] == "catalog" and catalog["database"] == "sqlite"
    assert catalog["events_per_page"] > 0
    assert len(catalog["cpu_ms_per_call"]) == 1
    assert routes["workload"] == "routes" and routes["requests_per_round"] == 5
    assert set(routes["cpu_ms_per_request"]) == {
        "/api/v1/events?limit=50",
        "/api/v1/events/{id}",
        "/events",
        "/events/{id}",
    }
    assert storm_user["workload"] == "storm-user" and storm_user["users_per_round"] == 5
    assert len(storm_user["cpu_ms_per_user"]) == 1
