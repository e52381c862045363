"""``center.metrics_listen``: a real ``townhall center`` with two web processes serves their
summed metrics on an address of its own, with no token, while its public ``/metrics``
keeps its token rule.

The command runs as an operator starts it (a subprocess, settings from the
environment, its own data folder); requests go each on a connection of its
own, so the kernel spreads them over both processes. Waits are bounded polls.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from contextlib import AbstractContextManager, ExitStack
from pathlib import Path

import httpx

from tests.support import child_process

GUARD = 180.0  # seconds before a wait is declared hung (a loaded machine starts slowly)
TOKEN = "a-long-scrape-token-for-the-tests"  # noqa: S105


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports nothing listens on (all bound at once, then freed)."""
    with ExitStack() as stack:
        ports = []
        for _ in range(count):
            sock = stack.enter_context(socket.socket())
            sock.bind(("127.0.0.1", 0))
            ports.append(int(sock.getsockname()[1]))
        return ports


def center_process(
    data: Path, log: Path, env: dict[str, str]
) -> AbstractContextManager[subprocess.Popen[bytes]]:
    command = [sys.executable, "-m", "townhall.cli", "center", "--data", str(data)]
    return child_process(command, log, env=env)


def answered(url: str, child: subprocess.Popen[bytes], log: Path) -> httpx.Response:
    """The first answer of ``url`` once something listens there."""
    deadline = time.monotonic() + GUARD
    while True:
        try:
            return httpx.get(url, timeout=10)
        except httpx.TransportError:
            assert child.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"nothing answered {url}"
            time.sleep(0.2)


def test_the_metrics_address_serves_both_workers_counts_without_a_token(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "center.log"
    web_port, metrics_port = free_ports(2)
    center, metrics = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{metrics_port}"
    env = {
        **os.environ,
        "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{web_port}",
        "TOWNHALL_CENTER__WORKERS": "2",
        "TOWNHALL_CENTER__METRICS_TOKEN": TOKEN,
        "TOWNHALL_CENTER__METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
    }
    with center_process(data, log, env) as child:
        assert answered(f"{center}/healthz", child, log).status_code == 200
        # Until both processes have counted (the second may start late), then 20 more.
        sent = 1
        while sent < 20 or len(list((data / "metrics").glob("counter_*.db"))) < 2:
            assert sent < 500, "one web process answered every request"
            assert httpx.get(f"{center}/healthz", timeout=10).status_code == 200
            sent += 1

        scraped = answered(f"{metrics}/metrics", child, log)
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        healthz = 'townhall_http_requests_total{method="GET",route="/healthz",status="200"}'
        assert f"{healthz} {sent}.0" in scraped.text
        assert 'townhall_center_mail_jobs{status="pending"} 0.0' in scraped.text
        assert httpx.get(f"{metrics}/other", timeout=10).status_code == 404

        # The public port: still the token, and the same sum behind it.
        assert httpx.get(f"{center}/metrics", timeout=10).status_code == 401
        public = httpx.get(
            f"{center}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
        assert public.status_code == 200 and f"{healthz} {sent}.0" in public.text

    assert f"Center metrics on {metrics}/metrics" in log.read_text()


def test_a_center_without_a_token_still_hides_its_public_metrics(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "center.log"
    web_port, metrics_port = free_ports(2)
    center, metrics = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{metrics_port}"
    env = {
        **os.environ,
        "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{web_port}",
        "TOWNHALL_CENTER__WORKERS": "1",
        "TOWNHALL_CENTER__METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
    }
    env.pop("TOWNHALL_CENTER__METRICS_TOKEN", None)
    with center_process(data, log, env) as child:
        assert answered(f"{center}/healthz", child, log).status_code == 200
        public = httpx.get(f"{center}/metrics", headers={"Authorization": "Bearer x"}, timeout=10)
        assert public.status_code == 404 and "townhall_http" not in public.text
        scraped = answered(f"{metrics}/metrics", child, log)
        healthz = 'townhall_http_requests_total{method="GET",route="/healthz",status="200"}'
        assert scraped.status_code == 200 and f"{healthz} 1.0" in scraped.text


def test_a_busy_metrics_address_costs_the_metrics_never_the_portal(tmp_path: Path) -> None:
    data, log = tmp_path / "data", tmp_path / "center.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        web_port, metrics_port = free_ports(1)[0], taken.getsockname()[1]
        env = {
            **os.environ,
            "TOWNHALL_CENTER__LISTEN": f"127.0.0.1:{web_port}",
            "TOWNHALL_CENTER__WORKERS": "2",
            "TOWNHALL_CENTER__METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
        }
        with center_process(data, log, env) as child:
            center = f"http://127.0.0.1:{web_port}"
            assert answered(f"{center}/healthz", child, log).status_code == 200
    assert f"no metrics: cannot listen on 127.0.0.1:{metrics_port}" in log.read_text()
