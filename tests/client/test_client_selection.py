"""Intelligent Server Selection: ranking rules, and probes over real TLS to real rooms."""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.client_support import Issuer, RoomServer
from tests.support import free_port
from townhall.client.selection import Probe, probe, rank, select
from townhall.pki import DevCA
from townhall.ticket import ServerEntry, Zone


def _probe(
    name: str,
    zone: Zone = Zone.INTERNAL,
    *,
    rtt: float = 1.0,
    load: tuple[int, int] | None = (0, 0),
    reachable: bool = True,
) -> Probe:
    entry = ServerEntry(name=name, host="127.0.0.1", port=9443, zone=zone)
    if not reachable:
        return Probe(server=entry, reachable=False, error="connection refused")
    participants, capacity = load if load is not None else (None, None)
    return Probe(
        server=entry, reachable=True, rtt_ms=rtt, participants=participants, capacity=capacity
    )


def _names(probes: list[Probe], zone: Zone | None = None) -> list[str]:
    return [p.server.name for p in rank(probes, zone).probes]


def test_an_answering_internal_server_makes_internal_the_preferred_zone() -> None:
    probes = [_probe("dmz", Zone.DMZ, rtt=0.5), _probe("main", rtt=9.0)]
    ranking = rank(probes)
    assert ranking.zone is Zone.INTERNAL
    assert [p.server.name for p in ranking.probes] == ["main", "dmz"]


def test_an_external_user_who_reaches_only_dmz_servers_prefers_dmz() -> None:
    probes = [
        _probe("main", reachable=False),
        _probe("dmz-2", Zone.DMZ, rtt=5.0),
        _probe("dmz-1", Zone.DMZ, rtt=2.0),
    ]
    ranking = rank(probes)
    assert ranking.zone is Zone.DMZ
    assert [p.server.name for p in ranking.probes] == ["dmz-1", "dmz-2", "main"]
    assert ranking.best is not None and ranking.best.server.name == "dmz-1"


def test_the_zone_asked_for_wins_over_the_default() -> None:
    probes = [_probe("main", rtt=0.1), _probe("dmz", Zone.DMZ, rtt=3.0)]
    assert _names(probes, Zone.DMZ) == ["dmz", "main"]


def test_within_a_zone_less_load_comes_before_a_shorter_round_trip() -> None:
    probes = [
        _probe("busy", rtt=0.2, load=(80, 100)),
        _probe("quiet", rtt=4.0, load=(10, 100)),
        _probe("unlimited", rtt=6.0, load=(500, 0)),
    ]
    assert _names(probes) == ["unlimited", "quiet", "busy"]


def test_a_percent_of_load_does_not_outweigh_the_round_trip() -> None:
    probes = [_probe("far", rtt=40.0, load=(10, 100)), _probe("near", rtt=1.0, load=(11, 100))]
    assert _names(probes) == ["near", "far"]


def test_a_full_server_comes_last_among_the_reachable_and_unknown_load_in_the_middle() -> None:
    probes = [
        _probe("full", rtt=0.1, load=(50, 50)),
        _probe("silent", rtt=0.2, load=None),
        _probe("half", rtt=0.3, load=(60, 100)),
        _probe("light", rtt=0.4, load=(1, 100)),
        _probe("down", reachable=False),
    ]
    assert _names(probes) == ["light", "silent", "half", "full", "down"]


async def test_probing_skips_unreachable_and_unverifiable_servers_and_ranks_the_rest(
    issuer: Issuer, tmp_path: Path
) -> None:
    main = await RoomServer("main", issuer).start()
    dmz = await RoomServer("dmz", issuer, zone=Zone.DMZ).start()
    stranger_ca = DevCA.ensure(tmp_path / "stranger")
    impostor = await RoomServer(
        "impostor", issuer, certificate=stranger_ca.issue("impostor", ["127.0.0.1"])
    ).start()
    pinned = await RoomServer("pinned", issuer, capacity=10).start()
    try:
        servers = [
            impostor.entry(),  # signed by another CA than the ticket's
            ServerEntry(name="gone", host="127.0.0.1", port=free_port(), zone=Zone.INTERNAL),
            pinned.entry(pins=[main.pin]),  # a pin of another key
            dmz.entry(),
            main.entry(),
        ]
        ticket = issuer.ticket(issuer.credential("ana"), servers)
        ranking = await probe(ticket)
        assert ranking.zone is Zone.INTERNAL
        assert [p.server.name for p in ranking.reachable] == ["main", "dmz"]
        by_name = {p.server.name: p for p in ranking.probes}
        assert "certificate" in (by_name["impostor"].error or "")
        assert "pins" in (by_name["pinned"].error or "")
        assert by_name["gone"].error and not by_name["gone"].reachable
        best = by_name["main"]
        assert best.server_name == "main" and best.rtt_ms is not None and best.rtt_ms > 0
        assert (best.participants, best.capacity) == (0, 0)  # the room's Load from Pong

        as_json = json.loads(json.dumps(ranking.to_json()))
        assert as_json["zone"] == "internal"
        assert [s["name"] for s in as_json["servers"]][:2] == ["main", "dmz"]
        assert as_json["servers"][0]["reachable"] is True
        assert as_json["servers"][-1]["reachable"] is False

        assert (await probe(ticket, zone=Zone.DMZ)).best.server.name == "dmz"  # type: ignore[union-attr]
        forced = await probe(ticket, only="dmz")
        assert [p.server.name for p in forced.probes] == ["dmz"]
    finally:
        for server in (main, dmz, impostor, pinned):
            await server.close()


async def test_a_right_pin_is_enough_without_a_ca_and_the_probe_keeps_its_connection(
    issuer: Issuer,
) -> None:
    pinned = await RoomServer("pinned", issuer, capacity=10).start()
    try:
        ticket = issuer.ticket(
            issuer.credential("ana"), [pinned.entry(pins=[pinned.pin])], ca=False
        )
        ranking, links = await select(ticket)
        assert ranking.best is not None and ranking.best.capacity == 10
        link = links["pinned"]
        assert link.server_name == "pinned"
        rtt, pong = await link.ping()  # still open, past Welcome
        assert pong.load is not None and pong.load.capacity == 10
        link.close("done")
        await link.wait_lost()
    finally:
        await pinned.close()


async def test_a_server_the_ticket_does_not_name_cannot_be_forced(issuer: Issuer) -> None:
    main = await RoomServer("main", issuer).start()
    try:
        ticket = issuer.ticket(issuer.credential("ana"), [main.entry()])
        try:
            await probe(ticket, only="elsewhere")
        except ValueError as error:
            assert "no server 'elsewhere'" in str(error) and "main" in str(error)
        else:
            raise AssertionError("forcing an unknown server must fail")
    finally:
        await main.close()
