"""Smoke test of bench/storm.py: 200 users through the Center into a tree of live servers.

Real processes on loopback (the Center, the Controller, a main live server and
two children, the speaker and the users' generators), nothing mocked. Checks
what a user would notice: every user got a ticket, joined, and heard the
speaker, spread over every server of the tree. No timing is checked (the
machine's load decides those); the full run is `bench/storm.py`.
"""

from __future__ import annotations

import json

from tests.bench.bench_support import run_bench

USERS = 200


def test_every_user_of_a_small_storm_hears_the_speaker() -> None:
    done = run_bench(
        "storm.py", f"--users={USERS}", "--children=2", "--seconds=150", "--json", timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["tickets"] == USERS, report["reasons"]
    assert report["joined"] == USERS, report["reasons"]
    assert report["heard"] == USERS, report["reasons"]
    assert report["never_heard"] == 0
    memory = report["memory"]
    assert set(memory) == {"main", "child-1", "child-2"}
    assert sum(server["listeners"] for server in memory.values()) == USERS
    assert all(server["listeners"] > 0 for server in memory.values())
    assert all(report["alive_at_end"].values()), report["alive_at_end"]
