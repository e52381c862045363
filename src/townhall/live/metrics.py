"""A live server's Prometheus metrics, read from the server at each scrape.

``LiveCollector`` is a ``prometheus_client`` collector: it keeps no series of
its own, and asks the ``LiveServer`` (``event_metrics``, ``counters``) when
Prometheus scrapes. So the per-event series are exactly the events the server
holds at that moment: bounded by them, and gone with an event's room when it
ends. Labels are the server's name and the event's id, never anything a
client sent; the link round trips (``townhall_live_link_rtt_seconds``) are
by peer server, across events, and bounded by ``linkrtt.MAX_PEERS``.
``METRIC_NAMES`` lists what it exports (the dashboard's test checks against
it); docs/metrics.md describes each one.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from townhall.live.linkrtt import RTT_BUCKETS
from townhall.live.server import LiveServer

__all__ = ["METRIC_NAMES", "LiveCollector"]

METRIC_NAMES: Final = (
    "townhall_live_connections",
    "townhall_live_events",
    "townhall_live_participants",
    "townhall_live_links_up",
    "townhall_live_deliveries_total",
    "townhall_live_sent_bytes_total",
    "townhall_live_dropped_frames_total",
    "townhall_live_dropped_bytes_total",
    "townhall_live_queued_bytes",
    "townhall_live_queue_age_seconds",
    "townhall_live_hop_delay_seconds",
    "townhall_live_link_rtt_seconds",
)


class LiveCollector(Collector):
    """The metrics of one live server (register it in the registry its door serves)."""

    def __init__(self, server: LiveServer) -> None:
        self._server = server

    def collect(self) -> Iterator[Metric]:
        name = self._server.name
        events = self._server.event_metrics()
        counters = self._server.counters()
        server_labels = ["server"]
        event_labels = ["server", "event", "role"]

        connections = GaugeMetricFamily(
            "townhall_live_connections",
            "Connections open on this live server: participants, links, handshakes",
            labels=server_labels,
        )
        connections.add_metric([name], counters.connections)
        held = GaugeMetricFamily(
            "townhall_live_events", "Events this live server holds a room for", labels=server_labels
        )
        held.add_metric([name], len(events))

        participants = GaugeMetricFamily(
            "townhall_live_participants",
            "Participants connected here, by event",
            labels=event_labels,
        )
        links = GaugeMetricFamily(
            "townhall_live_links_up",
            "Server links up in an event: synced children here, plus the link Up",
            labels=event_labels,
        )
        deliveries = CounterMetricFamily(
            "townhall_live_deliveries",
            "Frames written to a connection (one per listener or child server reached)",
            labels=event_labels,
        )
        sent = CounterMetricFamily(
            "townhall_live_sent_bytes", "Bytes written to connections", labels=event_labels
        )
        dropped = CounterMetricFamily(
            "townhall_live_dropped_frames",
            "Media frames dropped, by reason: queue_full (listener behind), late (older "
            "than live.max_media_age_ms), arrived_late (audio read that long after its "
            "stream's best case: dropped for everyone), not_allowed (the sender may not speak)",
            labels=[*event_labels, "reason"],
        )
        dropped_bytes = CounterMetricFamily(
            "townhall_live_dropped_bytes",
            "Bytes of media dropped for listeners (queue_full and late)",
            labels=event_labels,
        )
        queued = GaugeMetricFamily(
            "townhall_live_queued_bytes",
            "Bytes waiting in connections' queues",
            labels=event_labels,
        )
        age = GaugeMetricFamily(
            "townhall_live_queue_age_seconds",
            "How long the oldest media frame still queued has waited",
            labels=event_labels,
        )
        hop = SummaryMetricFamily(
            "townhall_live_hop_delay_seconds",
            "Writes of media to connections, and how long their oldest frame had waited "
            "here since it arrived: rate(_sum) / rate(_count) is this hop's mean delay",
            labels=event_labels,
        )
        for event in events:
            labels = [name, str(event.event_id), event.role]
            queues = event.queues
            participants.add_metric(labels, event.participants)
            links.add_metric(labels, event.links_up)
            deliveries.add_metric(labels, queues.delivered_frames)
            sent.add_metric(labels, queues.sent_bytes)
            late = queues.dropped_late_frames
            dropped.add_metric([*labels, "queue_full"], queues.dropped_frames - late)
            dropped.add_metric([*labels, "late"], late)
            dropped.add_metric([*labels, "not_allowed"], event.media_refused)
            dropped.add_metric([*labels, "arrived_late"], event.media_late)
            dropped_bytes.add_metric(labels, queues.dropped_bytes)
            queued.add_metric(labels, queues.queued_bytes)
            age.add_metric(labels, event.oldest_media_age)
            hop.add_metric(
                labels, count_value=queues.media_writes, sum_value=queues.media_wait_seconds
            )
        rtt = HistogramMetricFamily(
            "townhall_live_link_rtt_seconds",
            "Round trip of a timed Ping on a server link (parent or child), by the peer "
            "server: the network's delay between two servers of the tree",
            labels=["server", "peer"],
        )
        for peer, histogram in sorted(self._server.link_round_trips().items()):
            bounds = [repr(bound) for bound in RTT_BUCKETS]
            rtt.add_metric(
                [name, peer],
                [*zip(bounds, histogram.buckets, strict=True), ("+Inf", histogram.count)],
                sum_value=histogram.total,
            )
        yield from (
            connections,
            held,
            participants,
            links,
            deliveries,
            sent,
            dropped,
            dropped_bytes,
            queued,
            age,
            hop,
            rtt,
        )
