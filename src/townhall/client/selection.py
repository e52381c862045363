"""Intelligent Server Selection: probe every server of a ticket, rank them, fall back in order.

Each server of the ticket is probed at once, in parallel, within one bounded
time (``probe_timeout``, 3 s): TLS with ALPN ``townhall/1`` checked against the
ticket (``townhall.client.link``), ``Hello`` → ``Welcome``, then ``Ping`` →
``Pong`` a few times for the round-trip time and the load the server reports.
The ranking (``rank``, pure) puts reachable servers first, then those of the
preferred zone, then the less loaded (by tenths of capacity, so that a
percent of load does not outweigh a much shorter trip), then the shorter
round trip; the order is the fallback order. The preferred zone is the
caller's, else ``internal`` when any internal server answered (an external
user reaches only the DMZ servers, so an answer from an internal one says we
are inside), else ``dmz``.

``select`` keeps the probe connections of reachable servers open, so the
session authenticates on the winner without a second handshake, as
docs/protocol.md ("Time") describes; ``probe`` closes them (``townhall join
--probe`` prints its ``Ranking.to_json()``).
"""

from __future__ import annotations

import asyncio
import math
import ssl
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from townhall.client.link import CLIENT_NAME, Link, LinkClosed, ServerCheckFailed, open_link
from townhall.ticket import ServerEntry, TicketContents
from townhall.wire import LocalProtocolError, Settings
from townhall.wire.names import Zone

__all__ = ["PROBE_TIMEOUT", "Probe", "Ranking", "close_links", "probe", "rank", "select"]

PROBE_TIMEOUT: Final = 3.0
PINGS: Final = 3


@dataclass(frozen=True, slots=True)
class Probe:
    """What probing one server found; ``error`` says why an unreachable one is."""

    server: ServerEntry
    reachable: bool
    rtt_ms: float | None = None  # the shortest Ping → Pong
    participants: int | None = None  # from the Pong's load, when the server gives one
    capacity: int | None = None  # 0: no set limit
    server_name: str | None = None  # as the server named itself in Welcome
    error: str | None = None
    # When the probe began and ended, on the event loop's clock: shows that the
    # probes ran side by side (an unreachable server costs probe_timeout once, not per server).
    started: float | None = None
    finished: float | None = None

    @property
    def load_ratio(self) -> float | None:
        """participants / capacity; 0 for a server without a limit, None when unknown."""
        if self.participants is None or self.capacity is None:
            return None
        if self.capacity == 0:
            return 0.0
        return self.participants / self.capacity

    @property
    def full(self) -> bool:
        return bool(self.capacity) and (self.participants or 0) >= (self.capacity or 0)

    def to_json(self) -> dict[str, Any]:
        ratio = self.load_ratio
        return {
            "name": self.server.name,
            "address": self.server.address,
            "zone": self.server.zone.value,
            "reachable": self.reachable,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 3),
            "participants": self.participants,
            "capacity": self.capacity,
            "load": None if ratio is None else round(ratio, 4),
            "server": self.server_name,
            "error": self.error,
        }


@dataclass(frozen=True, slots=True)
class Ranking:
    """Probes best first: the order to try servers in."""

    zone: Zone  # the zone preferred
    probes: tuple[Probe, ...]

    @property
    def reachable(self) -> tuple[Probe, ...]:
        return tuple(probe for probe in self.probes if probe.reachable)

    @property
    def best(self) -> Probe | None:
        return next(iter(self.reachable), None)

    def to_json(self) -> dict[str, Any]:
        return {"zone": self.zone.value, "servers": [probe.to_json() for probe in self.probes]}


def _sort_key(probe: Probe, zone: Zone, order: int) -> tuple[int, int, int, float, int]:
    if not probe.reachable:
        return (1, 0, 0, 0.0, order)
    ratio = probe.load_ratio
    if probe.full:
        bucket = 11  # with no room: after every server with some
    elif ratio is None:
        bucket = 5  # says nothing: between half full and more
    else:
        bucket = min(10, math.floor(ratio * 10))
    rtt = probe.rtt_ms if probe.rtt_ms is not None else math.inf
    return (0, 0 if probe.server.zone is zone else 1, bucket, rtt, order)


def rank(probes: Iterable[Probe], zone: Zone | None = None) -> Ranking:
    """Order ``probes`` best first (pure); ties keep the ticket's order."""
    listed = list(probes)
    if zone is None:
        inside = any(p.reachable and p.server.zone is Zone.INTERNAL for p in listed)
        zone = Zone.INTERNAL if inside else Zone.DMZ
    ordered = sorted(enumerate(listed), key=lambda item: _sort_key(item[1], zone, item[0]))
    return Ranking(zone=zone, probes=tuple(probe for _, probe in ordered))


def _why(error: BaseException) -> str:
    match error:
        case TimeoutError():
            return "timed out"
        case ssl.SSLCertVerificationError():
            return f"certificate refused: {error.verify_message or error.reason}"
        case ssl.SSLError():
            return f"TLS failed: {error.reason or error}"
        case ServerCheckFailed() | LinkClosed():
            return str(error)
        case OSError():
            return error.strerror or str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


async def _probe_one(
    entry: ServerEntry,
    ca_pem: str | None,
    *,
    probe_timeout: float,
    pings: int,
    settings: Settings | None,
    client_name: str,
) -> tuple[Probe, Link | None]:
    link: Link | None = None
    clock = asyncio.get_running_loop().time
    started = clock()
    try:
        async with asyncio.timeout(probe_timeout):
            link = await open_link(entry, ca_pem, connect_timeout=probe_timeout, settings=settings)
            welcome = await link.hello(client_name)
            best: float | None = None
            load = None
            for _ in range(max(1, pings)):
                rtt, pong = await link.ping()
                best = rtt if best is None else min(best, rtt)
                load = pong.load if pong.load is not None else load
    except (OSError, TimeoutError, ServerCheckFailed, LinkClosed, LocalProtocolError) as error:
        if link is not None:
            link.abort()
        failed = Probe(
            server=entry, reachable=False, error=_why(error), started=started, finished=clock()
        )
        return failed, None
    except asyncio.CancelledError:
        if link is not None:
            link.abort()
        raise
    return (
        Probe(
            server=entry,
            reachable=True,
            rtt_ms=None if best is None else best * 1000,
            participants=None if load is None else load.participants,
            capacity=None if load is None else load.capacity,
            server_name=welcome.server,
            started=started,
            finished=clock(),
        ),
        link,
    )


def _entries(ticket: TicketContents, only: str | None) -> tuple[ServerEntry, ...]:
    if only is None:
        return ticket.servers
    chosen = tuple(entry for entry in ticket.servers if entry.name == only)
    if not chosen:
        names = ", ".join(entry.name for entry in ticket.servers)
        raise ValueError(f"the ticket has no server {only!r} (it has {names})")
    return chosen


async def select(
    ticket: TicketContents,
    *,
    zone: Zone | None = None,
    only: str | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    pings: int = PINGS,
    settings: Settings | None = None,
    client_name: str = CLIENT_NAME,
) -> tuple[Ranking, Mapping[str, Link]]:
    """Probe the ticket's servers (or only the one named ``only``) and rank them.

    Returns the ranking and the open connections (by server name) of the
    reachable ones, each past Welcome: the caller authenticates on one and
    closes the rest. Raises ValueError if ``only`` names no server of the ticket.
    """
    entries = _entries(ticket, only)
    tasks = [
        asyncio.ensure_future(
            _probe_one(
                entry,
                ticket.ca_pem,
                probe_timeout=probe_timeout,
                pings=pings,
                settings=settings,
                client_name=client_name,
            )
        )
        for entry in entries
    ]
    try:
        results = await asyncio.gather(*tasks)
    except asyncio.CancelledError:  # no caller will close what the finished probes opened
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is None:
                _, link = task.result()
                if link is not None:
                    link.abort()
        raise
    links = {probe.server.name: link for probe, link in results if link is not None}
    return rank((probe for probe, _ in results), zone), links


async def probe(
    ticket: TicketContents,
    *,
    zone: Zone | None = None,
    only: str | None = None,
    probe_timeout: float = PROBE_TIMEOUT,
    pings: int = PINGS,
) -> Ranking:
    """Probe and rank, closing every connection (each says Bye normal)."""
    ranking, links = await select(
        ticket, zone=zone, only=only, probe_timeout=probe_timeout, pings=pings
    )
    await close_links(links.values(), "probe")
    return ranking


async def close_links(links: Iterable[Link], message: str, *, wait: float = 1.0) -> None:
    """Say Bye normal on each and close them, waiting at most ``wait`` seconds for the
    transports to go (a TLS shutdown the peer does not answer would take longer)."""
    listed = list(links)
    for link in listed:
        link.close(message)
    if not listed:
        return
    waiting = [asyncio.ensure_future(link.wait_lost()) for link in listed]
    await asyncio.wait(waiting, timeout=wait)
    for link, task in zip(listed, waiting, strict=True):
        if not task.done():
            task.cancel()
            link.abort()
