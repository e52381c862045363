"""Smoke test of bench/fanout.py: the tiniest workload once, against Townhall only.

One speaker and four listeners over TLS for half a second: frames reach the
listeners and the table prints. No figure is checked against a target (the
machine's load decides those); the full benchmark is `bench/fanout.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench.bench_support import run_bench


def test_the_fanout_bench_delivers_frames_and_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "fanout.json"
    done = run_bench(
        "fanout.py",
        "--systems=townhall",
        "--workloads=1x1000",
        "--transports=tls",
        "--scale=0.004",
        "--runs=1",
        "--seconds=0.5",
        "--warmup=0.2",
        "--grace=0.5",
        "--no-limits",
        f"--json={out}",
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "== Fan-out benchmark" in done.stdout
    assert "1x1000    tls   townhall" in done.stdout
    report = json.loads(out.read_text())
    (row,) = report["results"]
    assert (row["system"], row["workload"], row["transport"]) == ("townhall", "1x1000", "tls")
    assert row["connections"] == 5  # one speaker, four listeners
    assert row["failed_joins"] == 0
    (run,) = report["runs"]
    assert run["frames_sent"] > 0
    assert run["delivered"] > 0
    assert run["window_deliveries"] > 0


def test_the_pass_bench_prints_each_loop_per_delivery(tmp_path: Path) -> None:
    """bench/fanout_pass.py: every loop writes its passes whole (a loop that lost a
    socket's bytes would stop it) and gets its row."""
    done = run_bench("fanout_pass.py", "--connections=8", "--passes=3", "--rounds=1", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = {line.split()[0] for line in done.stdout.splitlines()[2:] if line.strip()}
    assert {"transport", "python"} <= rows
    assert "compiled" in rows or "not built" in done.stdout
