"""A live server's metrics as a scraper reads them: per event, and gone when the event ends;
each server link's round trip, by peer server, at both ends.

Two real ``LiveServer``s over TLS (a main and a child) carry an event; their
metrics are served by a real ``MetricsServer`` and read over HTTP, parsed by
prometheus-client's own parser. A link child of the test's own making sends
stray Pongs and a Ping flood over real TLS.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from tests.live.live_support import EVENT_ID, LINK_SECRETS, Center
from tests.live.server_support import Pki, connect, eventually, joined, running, sealed
from townhall.live import ServerRole, link_ticket
from townhall.live.metrics import METRIC_NAMES, LiveCollector
from townhall.live.server import LiveServer
from townhall.metrics import MetricsServer
from townhall.wire import Ping, Pong, Role, Settings, TakeFloor

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


@asynccontextmanager
async def metrics_of(server: LiveServer) -> AsyncIterator[MetricsServer]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(server))
    door = MetricsServer("127.0.0.1:0", registry)
    await door.start()
    try:
        yield door
    finally:
        await door.close()


async def scrape(door: MetricsServer) -> tuple[set[str], Samples]:
    reader, writer = await asyncio.open_connection(door.host, door.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: prometheus\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    names: set[str] = set()
    samples: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        names.add(family.name + ("_total" if family.type == "counter" else ""))
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return names, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    found = [v for (n, series), v in samples.items() if n == name and wanted <= series]
    assert len(found) == 1, (name, labels, found)
    return found[0]


async def test_participants_links_deliveries_per_event_and_nothing_left_when_it_ends(
    pki: Pki, issuer: Center
) -> None:
    event = str(EVENT_ID)
    async with running(pki, "main") as main, running(pki, "child-a") as child:
        key = issuer.signing_key.public_key()
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        child.assign(
            issuer.assignment(
                ServerRole.CHILD,
                parent=f"127.0.0.1:{main.port}",
                link_secret=LINK_SECRETS["child-a"],
            ),
            key,
        )
        await eventually(lambda: main.status()[0].children == ("child-a",), "the tree formed")
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(child.port, context, "bo", sealed(issuer, "bo"))
        ana.send(TakeFloor())
        ana.open_stream()
        await ana.wait_for(lambda: ana.my_stream() is not None, "ana's stream")
        stream = ana.my_stream()
        await bo.wait_for(lambda: stream in bo.streams, "ana's stream on the child")
        ana.speak(20, size=100)
        await bo.wait_for(lambda: len(bo.media_from(stream)) == 20, "20 frames reached bo")  # type: ignore[arg-type]

        async with metrics_of(main) as main_door, metrics_of(child) as child_door:
            names, at_main = await scrape(main_door)
            _, at_child = await scrape(child_door)
            assert names == set(METRIC_NAMES)
            on_main = {"server": "main", "event": event, "role": "main"}
            on_child = {"server": "child-a", "event": event, "role": "child"}
            assert value(at_main, "townhall_live_participants", **on_main) == 1
            assert value(at_child, "townhall_live_participants", **on_child) == 1
            assert value(at_main, "townhall_live_links_up", **on_main) == 1  # child-a synced
            assert value(at_child, "townhall_live_links_up", **on_child) == 1  # its link Up
            # bo got ana's 20 frames through the child's queue for him.
            assert value(at_child, "townhall_live_deliveries_total", **on_child) >= 20
            assert value(at_child, "townhall_live_sent_bytes_total", **on_child) >= 20 * 100
            for reason in ("queue_full", "late", "arrived_late", "not_allowed"):
                dropped = value(
                    at_child, "townhall_live_dropped_frames_total", **on_child, reason=reason
                )
                assert dropped == 0
            assert value(at_child, "townhall_live_events", server="child-a") == 1
            # Each write of ana's media to bo counted how long it had waited on the child.
            assert value(at_child, "townhall_live_hop_delay_seconds_count", **on_child) >= 1
            assert value(at_child, "townhall_live_hop_delay_seconds_sum", **on_child) >= 0

            child.end(EVENT_ID)
            await bo.closed_by_server()
            _, after = await scrape(child_door)
            assert value(after, "townhall_live_events", server="child-a") == 0
            assert not [series for (_, series) in after if ("event", event) in series]


# -- the round trip of each server link -----------------------------------------------------------

# A long handshake timeout: the link Up's first timer is armed for it, and must be armed
# again sooner when the link opens (its first timed Ping is due at once).
LINK_TIMING = Settings(link_rtt_interval=0.5, handshake_timeout=3600)


async def test_each_end_of_a_server_link_shows_its_round_trip_to_the_peer_server(
    pki: Pki, issuer: Center
) -> None:
    async with (
        running(pki, "main", wire_settings=LINK_TIMING) as main,
        running(pki, "child-a", wire_settings=LINK_TIMING) as child,
    ):
        key = issuer.signing_key.public_key()
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        child.assign(
            issuer.assignment(
                ServerRole.CHILD,
                parent=f"127.0.0.1:{main.port}",
                link_secret=LINK_SECRETS["child-a"],
            ),
            key,
        )
        await eventually(lambda: main.status()[0].children == ("child-a",), "the tree formed")

        # Timed Pings go every half second, busy or not: wait for two samples each way.
        def timed(server: LiveServer, peer: str) -> int:
            found = server.link_round_trips().get(peer)
            return 0 if found is None else found.count

        await eventually(lambda: timed(main, "child-a") >= 2, "two round trips to child-a")
        await eventually(lambda: timed(child, "main") >= 2, "two round trips to main")

        async with metrics_of(main) as main_door, metrics_of(child) as child_door:
            names, at_main = await scrape(main_door)
            _, at_child = await scrape(child_door)
        assert "townhall_live_link_rtt_seconds" in names
        for samples, server, peer in ((at_main, "main", "child-a"), (at_child, "child-a", "main")):
            labels = {"server": server, "peer": peer}
            count = value(samples, "townhall_live_link_rtt_seconds_count", **labels)
            assert count >= 2
            assert value(samples, "townhall_live_link_rtt_seconds_bucket", **labels, le="+Inf") == (
                count
            )
            assert 0 < value(samples, "townhall_live_link_rtt_seconds_sum", **labels) < count * 10
            peers = {
                dict(series)["peer"]
                for (n, series) in samples
                if n.endswith("_count") and "peer" in dict(series)
            }
            assert peers == {peer}  # no series for anyone else


async def test_stray_pongs_and_a_ping_flood_on_a_link_leave_it_up_and_the_samples_true(
    pki: Pki, issuer: Center
) -> None:
    async with running(pki, "main", wire_settings=LINK_TIMING) as main:
        key = issuer.signing_key.public_key()
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        # A child of our own making, which answers Pings only when told to.
        impostor = await connect(
            main.port,
            pki.client_ssl(),
            "child-a",
            link_ticket("child-a", LINK_SECRETS["child-a"]),
            role=Role.SERVER_LINK,
            answer_pings=False,
        )
        await impostor.wait_for(lambda: impostor.joined, "the link's AuthOk")
        await impostor.wait_for(lambda: impostor.pings >= 1, "main's first timed Ping")
        asked = max(m.nonce for m in impostor.messages if isinstance(m, Ping))
        impostor.send(Pong(nonce=asked + 1000))  # not what was asked
        impostor.send(Pong(nonce=2**64 - 1))
        for nonce in range(1, 201):  # 200 Pings at once
            impostor.send(Ping(nonce=nonce))
        await impostor.wait_for(lambda: len(impostor.pongs) >= 16, "the burst answered")
        # From now on the impostor answers main's timed Pings as a child would.
        impostor.answer_pings = True

        def timed() -> int:
            found = main.link_round_trips().get("child-a")
            return 0 if found is None else found.count

        await eventually(lambda: timed() >= 2, "round trips measured after all that")
        assert impostor.closed is None and not impostor.eof and impostor.protocol_error is None
        assert len(impostor.pongs) < 200  # the burst was answered, not the flood
        assert main.status()[0].participants == 0 and main.counters().connections == 1
