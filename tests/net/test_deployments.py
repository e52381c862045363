"""The spec's deployments on separated networks: the firewall, the internal setup, the public ones.

One deployment (tests/net/conftest.py) serves every test here, each with an
event of its own. Internal participants run on the staff machine, external
ones on the outside machine, both in this process (``HostLoop``); what they
hear is measured as tests/e2e does. The browser participant is not part of
these tests yet.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from dataclasses import dataclass

from tests.e2e.e2e_support import Watcher, dominant_frequency, ticket_for
from tests.e2e.test_live_event_e2e import tone
from tests.net.deployment import Deployment
from tests.net.topology import (
    ADDRESS,
    CENTER_PORT,
    CONTROLLER_PORT,
    DMZ_PORT,
    MAIN_PORT,
    PROXY_PORT,
    HostLoop,
    reaches,
)
from townhall.client.audio import SAMPLE_RATE, Recorder, encode_opus, send_packets
from townhall.client.events import FloorChanged, Joined, StreamStarted
from townhall.client.link import tls_context
from townhall.controller.link import ALPN as CONTROL_ALPN
from townhall.live.admission import link_ticket
from townhall.ticket import Zone
from townhall.wire import (
    PROTOCOL_VERSION,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Codec,
    Connection,
    Hello,
    Role,
    Side,
    Welcome,
)
from townhall.wire.connection import NeedData

# (from machine, to machine, port, allowed by docs/install.md's rules)
PATHS = [
    ("outside", "proxy", PROXY_PORT, True),
    ("outside", "dmz", DMZ_PORT, True),
    ("outside", "main", MAIN_PORT, False),
    ("outside", "child", MAIN_PORT, False),
    ("outside", "center", CENTER_PORT, False),
    ("outside", "center", CONTROLLER_PORT, False),
    ("dmz", "main", MAIN_PORT, True),
    ("dmz", "center", CONTROLLER_PORT, True),
    ("dmz", "center", CENTER_PORT, False),
    ("dmz", "child", MAIN_PORT, False),
    ("dmz", "outside", 443, False),
    ("dmz", "proxy", PROXY_PORT, True),
    ("proxy", "center", CENTER_PORT, True),
    ("proxy", "center", CONTROLLER_PORT, False),
    ("proxy", "main", MAIN_PORT, False),
    ("staff", "dmz", DMZ_PORT, True),
    ("staff", "outside", 443, True),
    ("staff", "center", CENTER_PORT, True),
]


def test_the_firewall_lets_through_exactly_the_port_tables_paths(deployment: Deployment) -> None:
    loops: dict[str, HostLoop] = {"staff": deployment.staff, "outside": deployment.outside}
    extra = []
    try:
        for machine in ("dmz", "proxy"):
            loops[machine] = HostLoop(deployment.topology.namespaces[machine])
            extra.append(loops[machine])
        # All at once: a dropped SYN costs the connect timeout, once.
        attempts = {
            (source, target, port): reaches(loops[source], ADDRESS[target], port)
            for source, target, port, _ in PATHS
        }
        seen = {path: attempt.result(30) for path, attempt in attempts.items()}
    finally:
        for loop in extra:
            loop.close()
    expected = {(source, target, port): allowed for source, target, port, allowed in PATHS}
    assert seen == expected


def join(host: HostLoop, deployment: Deployment, name: str, event_id: int) -> Watcher:
    """``name``'s ticket from the Center, asked and used on ``host`` (through the proxy
    from outside), and ``name`` in the event through server selection."""
    if host is deployment.outside:
        ticket = deployment.ticket_through_proxy(name, event_id)
    else:
        ticket = deployment.staff.call(ticket_for, deployment.center, name, event_id)

    async def joined() -> Watcher:
        watcher = Watcher(ticket)  # no server named: server selection decides
        await watcher.participant.join()
        return watcher

    return host.run(joined())


@dataclass
class Person:
    host: HostLoop
    watcher: Watcher

    def chat(self) -> list[tuple[str, str]]:
        return self.host.do(self.watcher.chat)

    def wait_for(self, check: Callable[[Watcher], object], what: str) -> None:
        self.host.run(self.watcher.wait_for(lambda: check(self.watcher), what))

    def server(self) -> str | None:
        joined = [
            e for e in self.host.do(lambda: list(self.watcher.events)) if isinstance(e, Joined)
        ]
        return joined[-1].server if joined else None


def chat_both_ways(people: dict[str, Person], lines: dict[str, str]) -> None:
    """Each of ``lines``' senders says its line; everybody sees every line."""
    for sender, text in lines.items():
        person = people[sender]
        person.host.do(lambda p=person, t=text: p.watcher.participant.say(t))
    expected = set(lines.items())
    for person in people.values():
        person.wait_for(lambda w: expected <= set(w.chat()), f"{sorted(expected)}")
    for name, person in people.items():
        chat = person.chat()
        assert len(chat) == len(set(chat)), f"{name} got a message twice: {chat}"


def tone_heard(people: dict[str, Person], moderator: str, speaker: str, frequency: float) -> None:
    """The moderator gives ``speaker`` the floor; it streams a tone; the others hear it."""
    people[moderator].host.do(lambda: people[moderator].watcher.participant.give_floor(speaker))
    for person in people.values():
        person.wait_for(
            lambda w: any(isinstance(e, FloorChanged) and e.holder == speaker for e in w.events),
            f"{speaker} holding the floor",
        )
    listeners = [p for name, p in people.items() if name != speaker]
    before = {id(p): len(p.host.do(lambda p=p: list(p.watcher.media))) for p in listeners}
    source = people[speaker]
    packets = encode_opus(tone(2.0, frequency))

    async def stream() -> None:
        participant = source.watcher.participant
        stream_id = await participant.open_stream(Codec.OPUS)
        for listener in listeners:
            await asyncio.wrap_future(
                listener.host.submit(
                    listener.watcher.wait_for(
                        lambda w=listener.watcher, s=stream_id: any(
                            isinstance(e, StreamStarted) and e.stream_id == s for e in w.events
                        ),
                        "the stream",
                    )
                )
            )
        await send_packets(
            lambda packet, ts: participant.send_media(stream_id, packet, ts), packets
        )
        participant.close_stream(stream_id)

    source.host.run(stream())
    for listener in listeners:
        first = before[id(listener)]
        listener.wait_for(
            lambda w, f=first: len(w.media) - f >= len(packets) * 0.9, "most of the tone"
        )

        def heard(w: Watcher = listener.watcher, f: int = first) -> float:
            media = w.media[f:]
            recorder = Recorder(media[0][1])
            for frame, arrived in media:
                recorder.feed(frame, arrived)
            return dominant_frequency(recorder.pcm(), SAMPLE_RATE)

        frequency_heard = listener.host.do(heard)
        assert abs(frequency_heard - frequency) <= 5, (
            f"{listener.watcher.participant.name} heard {frequency_heard} Hz, not {frequency}"
        )


def leave_all(people: dict[str, Person]) -> None:
    for person in people.values():
        person.host.run(person.watcher.participant.leave())


def test_internal_participants_select_internal_servers_and_the_event_works(
    deployment: Deployment,
) -> None:
    event_id = deployment.schedule_now("Internal all hands")
    live = deployment.wait_ready(event_id)
    assert {s["name"] for s in live["servers"]} == {"main", "child", "dmz"}  # type: ignore[union-attr]
    staff = deployment.staff
    people = {
        name: Person(staff, join(staff, deployment, name, event_id)) for name in ("olga", "mike")
    }
    try:
        for name, person in people.items():
            assert person.server() in {"main", "child"}, f"{name} joined {person.server()}"
            ranking = person.host.do(lambda p=person: p.watcher.participant.ranking)
            assert ranking is not None and ranking.best is not None
            assert ranking.best.server.zone is Zone.INTERNAL
        for person in people.values():
            person.wait_for(lambda w: len(w.participant.roster) == 2, "both people")
        chat_both_ways(people, {"olga": "good morning, staff", "mike": "morning, olga"})
        tone_heard(people, moderator="olga", speaker="mike", frequency=440.0)
    finally:
        leave_all(people)


def test_an_external_participant_reaches_only_the_dmz_server_and_joins_the_event(
    deployment: Deployment,
) -> None:
    event_id = deployment.schedule_now("Public town hall")
    deployment.wait_ready(event_id)
    staff, outside = deployment.staff, deployment.outside
    people = {
        "olga": Person(staff, join(staff, deployment, "olga", event_id)),
        "mike": Person(staff, join(staff, deployment, "mike", event_id)),
        "nina": Person(outside, join(outside, deployment, "nina", event_id)),
    }
    try:
        nina = people["nina"]
        assert nina.server() == "dmz"
        ranking = outside.do(lambda: nina.watcher.participant.ranking)
        assert ranking is not None
        unreachable = [p for p in ranking.probes if not p.reachable]
        assert sorted(p.server.name for p in unreachable) == ["child", "main"]
        assert all(p.error == "timed out" for p in unreachable), unreachable
        # Side by side, not one after another: each began before any other ended.
        starts = [p.started for p in ranking.probes]
        ends = [p.finished for p in ranking.probes]
        assert None not in starts and None not in ends
        assert max(starts) < min(ends), ranking.probes  # type: ignore[type-var]

        for person in people.values():
            person.wait_for(lambda w: len(w.participant.roster) == 3, "all three")
        chat_both_ways(people, {"nina": "hello from outside", "olga": "welcome, nina"})
        tone_heard(people, moderator="olga", speaker="nina", frequency=440.0)
        tone_heard(people, moderator="olga", speaker="mike", frequency=660.0)
    finally:
        leave_all(people)


def test_the_dmz_server_refuses_server_and_control_links_from_the_internet(
    deployment: Deployment,
) -> None:
    event_id = deployment.schedule_now("Guarded")
    deployment.wait_ready(event_id)
    ticket = deployment.staff.call(ticket_for, deployment.center, "otto", event_id)
    dmz = next(entry for entry in ticket.servers if entry.name == "dmz")

    async def claim(role: Role, credential: bytes) -> AuthFailed | AuthOk | None:
        """Connect as a live server's peer would, say Hello as ``role``, present ``credential``."""
        reader, writer = await asyncio.open_connection(
            dmz.host, dmz.port, ssl=tls_context(dmz, ticket.ca_pem), server_hostname=dmz.host
        )
        loop = asyncio.get_running_loop()
        wire = Connection(Side.CLIENT, now=loop.time())
        try:
            writer.write(wire.send(Hello(role=role, version=PROTOCOL_VERSION, client="intruder")))
            while True:
                event = wire.next_event()
                if isinstance(event, NeedData):
                    data = await reader.read(65536)
                    if not data:
                        return None
                    wire.receive_data(data, loop.time())
                elif isinstance(event, Welcome):
                    writer.write(wire.send(Auth(ticket=credential)))
                elif isinstance(event, AuthFailed | AuthOk):
                    return event
                else:
                    return None
        finally:
            writer.close()

    # A child of the main server, as the DMZ server itself is: not a child of the DMZ server.
    as_child = deployment.outside.run(claim(Role.SERVER_LINK, link_ticket("child", "a" * 32)))
    assert isinstance(as_child, AuthFailed), as_child
    as_controller = deployment.outside.run(claim(Role.CONTROLLER_LINK, b"x" * 32))
    assert isinstance(as_controller, AuthFailed), as_controller
    assert as_controller.reason is AuthFailure.NOT_ALLOWED

    async def as_control_link() -> str | None:
        context = ssl.create_default_context(cadata=ticket.ca_pem)
        context.set_alpn_protocols([CONTROL_ALPN])
        try:
            reader, writer = await asyncio.open_connection(
                dmz.host, dmz.port, ssl=context, server_hostname=dmz.host
            )
        except (ssl.SSLError, ConnectionError) as error:
            return f"refused in the handshake: {error}"
        try:
            chosen = writer.get_extra_info("ssl_object").selected_alpn_protocol()
            if chosen == CONTROL_ALPN:
                return None
            return f"ALPN {chosen!r}, then {await reader.read(100)!r}"
        finally:
            writer.close()

    refused = deployment.outside.run(as_control_link())
    assert refused is not None, "the DMZ server spoke the control protocol"
