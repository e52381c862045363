"""The Controller's Prometheus metrics, read from the service at each scrape.

``ControllerCollector`` keeps no series of its own: at each scrape it counts
the control links up, the events the Planner holds by state (``ready`` means
formed: every server assigned and linked) and the assignments by server.
Its labels are server names and states, bounded by the Manager's registry
and ``LiveState``. ``METRIC_NAMES`` lists what it exports; docs/metrics.md
describes each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from townhall.controller.service import ControllerService
from townhall.wire.names import LiveState

__all__ = ["METRIC_NAMES", "ControllerCollector"]

METRIC_NAMES: Final = (
    "townhall_controller_links",
    "townhall_controller_events",
    "townhall_controller_assignments",
)


class ControllerCollector(Collector):
    def __init__(self, service: ControllerService) -> None:
        self._service = service

    def collect(self) -> Iterator[Metric]:
        links = GaugeMetricFamily(
            "townhall_controller_links", "Live servers with a control link up to this Controller"
        )
        links.add_metric([], len(self._service.linked))
        yield links
        try:
            planner = self._service.planner
        except RuntimeError:  # not started yet: no events to show
            return
        states = list(planner.event_states().values())
        events = GaugeMetricFamily(
            "townhall_controller_events",
            "Events whose tree the Controller handles, by state (ready: formed)",
            labels=["state"],
        )
        for state in LiveState:
            events.add_metric([state.value], states.count(state))
        yield events
        assignments = GaugeMetricFamily(
            "townhall_controller_assignments",
            "Events assigned to each live server",
            labels=["server"],
        )
        for server, count in sorted(planner.assignment_counts().items()):
            assignments.add_metric([server], count)
        yield assignments
