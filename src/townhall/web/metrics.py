"""The web process's Prometheus metrics: requests by route template, and ``GET /metrics``.

``WebMetrics`` holds one application's registry: requests and their latency
by route *template* (``/api/v1/events/{event_id}``, never the path a client
sent, which would make a series per URL anyone types; what no route matched
is ``route="other"``), the counters components ask for (``counter``), and the
collectors they hang on (read at each scrape: the Center's mail queue). With
several web processes (``center.workers`` above 1) ``townhall center`` points
prometheus-client's multiprocess mode at a folder of the data folder
(``PROMETHEUS_MULTIPROC_DIR``): each process writes its counters to its own
memory-mapped files, and a scrape, whichever process answers it, adds them
all up; the collectors read the database, which every process shares.
``/metrics`` answers only a bearer token equal to ``center.metrics_token``
(compared in constant time); without that setting it is 404. The same sums
can also be served, without a token, on ``center.metrics_listen`` by the
process that runs the workers (``scrape_registry``; webprocess.py). docs/metrics.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Final

from fastapi import Request
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["METRIC_NAMES", "MULTIPROCESS_VARIABLE", "RequestMetrics", "WebMetrics", "metrics_of"]

# prometheus-client's own switch; ``townhall center`` sets it before starting its workers.
MULTIPROCESS_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
OTHER_ROUTE: Final = "other"
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

METRIC_NAMES: Final = (
    "townhall_http_requests_total",
    "townhall_http_request_duration_seconds",
)


class WebMetrics:
    """One web application's metrics; ``exposition()`` is what ``/metrics`` answers."""

    def __init__(self) -> None:
        self.multiprocess_dir = os.environ.get(MULTIPROCESS_VARIABLE) or None
        # No describe at registration: the collectors would read the database then.
        self.registry = CollectorRegistry(auto_describe=False)
        self.requests = Counter(
            "townhall_http_requests",
            "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "townhall_http_request_duration_seconds",
            "Time to answer an HTTP request, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._counters: dict[str, Counter] = {}
        self._collectors: list[Collector] = []
        self._summed: CollectorRegistry | None = None

    def counter(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Counter:
        """The counter ``name`` of this application, made at its first use."""
        counter = self._counters.get(name)
        if counter is None:
            counter = Counter(name, documentation, list(labels), registry=self.registry)
            self._counters[name] = counter
        return counter

    def add_collector(self, collector: Collector) -> None:
        self._collectors.append(collector)
        self._summed = None
        if self.multiprocess_dir is None:
            self.registry.register(collector)

    def scrape_registry(self) -> CollectorRegistry:
        """What a scrape reads: this process's registry, or with several processes one
        that adds up every process's files (read at each scrape) and the collectors."""
        if self.multiprocess_dir is None:
            return self.registry
        if self._summed is None:
            registry = CollectorRegistry(auto_describe=False)
            MultiProcessCollector(registry, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
            for collector in self._collectors:
                registry.register(collector)
            self._summed = registry
        return self._summed

    def exposition(self) -> bytes:
        return generate_latest(self.scrape_registry())


def metrics_of(request: Request) -> WebMetrics:
    metrics: WebMetrics = request.app.state.metrics
    return metrics


class RequestMetrics:
    """Count each HTTP request and time it, labelled by the route template that served it."""

    def __init__(self, app: ASGIApp, metrics: WebMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or OTHER_ROUTE
            method = scope["method"] if scope["method"] in _METHODS else "OTHER"
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)


_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
