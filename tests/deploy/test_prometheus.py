"""Debian's Prometheus scrapes a running ``townhall up`` and sees a participant join.

Everything is real: ``townhall up`` as a newcomer runs it (two web
processes, so the Center's counters go through prometheus-client's
multiprocess mode), ``/usr/bin/prometheus`` with a scrape configuration like
the one in docs/metrics.md (one second between scrapes, the Center scraped
with its bearer token), ``townhall join`` holding the demo event, and the
answer read from Prometheus's HTTP API. Waits are bounded polls, not timed
assertions.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support import child_process as process
from tests.support import free_run
from townhall.controller.metrics import METRIC_NAMES as CONTROLLER_METRICS
from townhall.live.metrics import METRIC_NAMES as LIVE_METRICS

PROMETHEUS = "/usr/bin/prometheus"
GUARD = 180.0  # seconds before a wait is declared hung (a loaded machine starts slowly)

pytestmark = pytest.mark.skipif(
    not Path(PROMETHEUS).exists(), reason="Debian's prometheus is not installed (scripts/setup)"
)


def townhall(*args: str) -> list[str]:
    return [sys.executable, "-m", "townhall.cli", *args]


def scrape_config(center: str, token_file: Path, metrics: dict[str, str]) -> str:
    live = ", ".join(f'"{address}"' for name, address in metrics.items() if name != "controller")
    return f"""\
global:
  scrape_interval: 3s
  scrape_timeout: 3s
scrape_configs:
  - job_name: townhall-center
    authorization:
      credentials_file: {token_file}
    static_configs:
      - targets: ["{center}"]
  - job_name: townhall-controller
    static_configs:
      - targets: ["{metrics["controller"]}"]
  - job_name: townhall-live
    static_configs:
      - targets: [{live}]
"""


def query(prometheus: str, promql: str) -> list[dict[str, object]]:
    response = httpx.get(f"{prometheus}/api/v1/query", params={"query": promql}, timeout=10)
    response.raise_for_status()
    answer = response.json()
    assert answer["status"] == "success", answer
    return answer["data"]["result"]  # type: ignore[no-any-return]


def wait_for_value(
    prometheus: str, promql: str, wanted: float, why: str, *alive: subprocess.Popen[bytes]
) -> None:
    deadline = time.monotonic() + GUARD
    result: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        for child in alive:
            assert child.poll() is None, f"{child.args[:4]} stopped while waiting for {why}"
        try:
            result = query(prometheus, promql)
        except httpx.TransportError:
            result = []  # Prometheus still starting
        except httpx.HTTPStatusError as error:
            if error.response.status_code != 503:
                raise
            result = []  # listening, but its database not ready yet (it says 503 until then)
        if len(result) == 1 and float(result[0]["value"][1]) == wanted:  # type: ignore[index]
            return
        time.sleep(0.5)
    with contextlib.suppress(httpx.HTTPError):
        targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=10).json()["data"]
        why += "; targets: " + "; ".join(
            f"{t['scrapeUrl']} {t['health']} {t['lastError']}" for t in targets["activeTargets"]
        )
    raise AssertionError(f"never happened: {why}; last answer {result}")


def test_prometheus_scrapes_townhall_up_and_counts_a_live_events_participant(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    # Every port from one run below the ephemeral range: ports picked one at a time can
    # overlap, and ephemeral ones can be taken before ``townhall up`` binds them.
    first = free_run(10)
    center = f"127.0.0.1:{first}"
    env = {
        **os.environ,
        "TOWNHALL_CENTER__LISTEN": center,
        "TOWNHALL_CENTER__WORKERS": "2",
        "TOWNHALL_CONTROLLER__LISTEN": f"127.0.0.1:{first + 1}",
    }
    env.pop("TOWNHALL_CENTER__METRICS_TOKEN", None)
    live_port, metrics_port, prometheus_port = first + 2, first + 5, first + 9
    metrics = {"controller": f"127.0.0.1:{metrics_port}"} | {
        name: f"127.0.0.1:{metrics_port + 1 + n}"
        for n, name in enumerate(("main", "child-a", "child-dmz"))
    }
    up_command = townhall(
        "up",
        "--data",
        str(data),
        "--live-port",
        str(live_port),
        "--metrics-port",
        str(metrics_port),
    )
    with process(up_command, tmp_path / "up.log", env=env) as up:
        ticket, token_file = data / "demo.townhall", data / "metrics-token"
        deadline = time.monotonic() + GUARD
        while not (ticket.exists() and token_file.exists()):
            assert up.poll() is None, (tmp_path / "up.log").read_text()
            assert time.monotonic() < deadline, "no demo ticket"
            time.sleep(0.2)
        assert oct(token_file.stat().st_mode & 0o777) == "0o600"
        printed = (tmp_path / "up.log").read_text()
        for address in metrics.values():
            assert f"http://{address}/metrics" in printed

        # Two web processes, one count: each request on a connection of its own, so the
        # kernel spreads them over both processes; the scrape adds up what each counted.
        token = token_file.read_text().strip()
        deadline = time.monotonic() + GUARD
        while True:
            try:
                assert httpx.get(f"http://{center}/metrics", timeout=10).status_code == 401
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the Center never answered"
                time.sleep(0.2)
        # Until both processes have counted (the second may start late, and the kernel
        # hands connections to whichever accepts first), then at least 20 requests.
        sent = 0
        while sent < 20 or len(list((data / "metrics").glob("counter_*.db"))) < 2:
            assert sent < 500, "one web process answered every request"
            assert httpx.get(f"http://{center}/healthz", timeout=10).status_code == 200
            sent += 1
        scraped = httpx.get(
            f"http://{center}/metrics", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        healthz = 'townhall_http_requests_total{method="GET",route="/healthz",status="200"}'
        assert f"{healthz} {sent}.0" in scraped.text

        config = tmp_path / "prometheus.yml"
        config.write_text(scrape_config(center, token_file.resolve(), metrics))
        prometheus_url = f"http://127.0.0.1:{prometheus_port}"
        prometheus_command = [
            PROMETHEUS,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address={prometheus_url.removeprefix('http://')}",
        ]
        with process(prometheus_command, tmp_path / "prometheus.log") as prometheus:
            # Every part answers its scrapes (the Center's only with its token).
            wait_for_value(
                prometheus_url, 'sum(up{job=~"townhall-.*"})', 5, "5 targets up", up, prometheus
            )
            wait_for_value(prometheus_url, "townhall_controller_links", 3, "3 control links", up)
            # The demo event's tree: formed, one assignment on each of the three servers.
            wait_for_value(
                prometheus_url, 'townhall_controller_events{state="ready"}', 1, "tree formed", up
            )
            wait_for_value(
                prometheus_url, "sum(townhall_controller_assignments)", 3, "3 assignments", up
            )
            # Right after the start the tree may still be forming: join until admitted.
            joined = False
            for _ in range(30):
                with process(
                    townhall("join", str(ticket), "--json", "--seconds", "300"),
                    tmp_path / "join.log",
                    env=env,
                ) as join:
                    deadline = time.monotonic() + 30
                    while join.poll() is None and time.monotonic() < deadline:
                        lines = (tmp_path / "join.log").read_text().splitlines()
                        if any(
                            json.loads(line).get("type") == "joined"
                            for line in lines
                            if line.startswith("{")
                        ):
                            joined = True
                            break
                        time.sleep(0.2)
                    if joined:
                        wait_for_value(
                            prometheus_url,
                            "sum(townhall_live_participants)",
                            1,
                            "the participant in Prometheus",
                            up,
                            join,
                        )
                        series = query(prometheus_url, "townhall_live_participants == 1")
                        assert len(series) == 1
                        labels = series[0]["metric"]
                        assert labels["job"] == "townhall-live"  # type: ignore[index]
                        assert labels["role"] in ("main", "child")  # type: ignore[index]
                        names = query(
                            prometheus_url, 'group by (__name__) ({__name__=~"townhall_.*"})'
                        )
                        scraped_names = {
                            re.sub(r"_(count|sum|bucket)$", "", series["metric"]["__name__"])  # type: ignore[index]
                            for series in names
                        }
                        assert set(CONTROLLER_METRICS) | set(LIVE_METRICS) <= scraped_names
                        # The Center's scrapes are counted, whichever web process took them.
                        requests = query(
                            prometheus_url, 'sum(townhall_http_requests_total{route="/metrics"})'
                        )
                        assert float(requests[0]["value"][1]) >= 1  # type: ignore[index]
                        break
                time.sleep(1)
            assert joined, (tmp_path / "join.log").read_text()
    shutil.rmtree(tmp_path / "tsdb", ignore_errors=True)
