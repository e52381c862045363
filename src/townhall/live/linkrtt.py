"""``LinkRoundTrips``: the round trips of a live server's links, by peer server, as histograms.

Pure bookkeeping, like the outbox: no sockets, no clock. The shell feeds it
what each room's ``Dispatcher.take_round_trips`` gives (the peer's name and
seconds, from the timed Pings of ``wire.Settings.link_rtt_interval``), and
the metrics collector reads ``histograms`` at each scrape
(``townhall_live_link_rtt_seconds``). Labels are the tree's server names,
which the link ticket (a child) or the parent's checked certificate and
Welcome gave; still, at most ``MAX_PEERS`` are kept, and samples of any
further peer are counted in ``dropped`` instead. docs/metrics.md.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from typing import Final

__all__ = ["MAX_PEERS", "RTT_BUCKETS", "LinkRoundTrips", "RoundTripHistogram"]

# Upper bounds (seconds): a LAN hop is under a millisecond, a WAN one tens to hundreds.
RTT_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
MAX_PEERS: Final = 256


@dataclass(frozen=True, slots=True)
class RoundTripHistogram:
    """One peer's samples: ``buckets`` are cumulative counts for ``RTT_BUCKETS`` (then
    +Inf, which is ``count``), as Prometheus writes them."""

    buckets: tuple[int, ...]
    count: int
    total: float


class LinkRoundTrips:
    def __init__(self) -> None:
        self._counts: dict[str, list[int]] = {}  # per bucket, not cumulative; +Inf last
        self._totals: dict[str, float] = {}
        self.dropped = 0

    def observe(self, peer: str, seconds: float) -> None:
        counts = self._counts.get(peer)
        if counts is None:
            if len(self._counts) >= MAX_PEERS:
                self.dropped += 1
                return
            counts = self._counts[peer] = [0] * (len(RTT_BUCKETS) + 1)
            self._totals[peer] = 0.0
        counts[bisect_left(RTT_BUCKETS, seconds)] += 1
        self._totals[peer] += seconds

    def histograms(self) -> dict[str, RoundTripHistogram]:
        """Every peer seen so far, by name."""
        found: dict[str, RoundTripHistogram] = {}
        for peer, counts in self._counts.items():
            cumulative: list[int] = []
            running = 0
            for count in counts[:-1]:
                running += count
                cumulative.append(running)
            found[peer] = RoundTripHistogram(
                buckets=tuple(cumulative), count=running + counts[-1], total=self._totals[peer]
            )
        return found
