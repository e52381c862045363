"""``LinkRoundTrips``: cumulative buckets as Prometheus writes them, and a bounded set of peers."""

from __future__ import annotations

from townhall.live.linkrtt import MAX_PEERS, RTT_BUCKETS, LinkRoundTrips


def test_samples_land_in_cumulative_buckets_with_their_sum_and_count() -> None:
    trips = LinkRoundTrips()
    for seconds in (0.0002, 0.001, 0.03, 9.0):  # the bound itself counts in its bucket
        trips.observe("main", seconds)
    ((peer, histogram),) = trips.histograms().items()
    assert peer == "main"
    assert len(histogram.buckets) == len(RTT_BUCKETS)
    by_bound = dict(zip(RTT_BUCKETS, histogram.buckets, strict=True))
    assert by_bound[0.0005] == 1 and by_bound[0.001] == 2 and by_bound[0.025] == 2
    assert by_bound[0.05] == 3 and by_bound[2.5] == 3  # 9 s is past the last bound
    assert histogram.count == 4 and histogram.total == 0.0002 + 0.001 + 0.03 + 9.0


def test_peers_past_the_bound_are_counted_as_dropped_not_kept() -> None:
    trips = LinkRoundTrips()
    for n in range(MAX_PEERS + 10):
        trips.observe(f"server-{n}", 0.01)
    trips.observe("server-0", 0.02)  # a peer already kept still counts
    assert len(trips.histograms()) == MAX_PEERS
    assert trips.histograms()["server-0"].count == 2
    assert trips.dropped == 10
