"""Smoke test of bench/center.py with its wrk cross-check: a tiny run through a real
``townhall center`` process, each route driven by our generator and then by Debian's
``wrk``, whose output the bench reads.

Checks that every request of both generators was answered with a success, and that
wrk's figures were read (a rate, a p99); no figure is compared with the target (the
machine's load decides those).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from tests.bench.bench_support import run_bench


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk: scripts/setup --test installs it")
def test_every_route_is_answered_by_both_generators() -> None:
    done = run_bench(
        "center.py",
        "--seconds=1",
        "--warmup=0",
        "--clients=4",
        "--users=20",
        "--events=200",
        "--registrations=500",
        "--wrk",
        "--json",
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    routes = json.loads(done.stdout)["routes"]
    assert len(routes) == 6
    for route in routes:
        assert route["requests"] > 0 and route["errors"] == 0, route
        wrk = route["wrk"]
        assert wrk["not_ok"] == 0 and wrk["socket_errors"] == 0, route
        assert wrk["requests_per_second"] > 0 and math.isfinite(wrk["p99_ms"]), route
