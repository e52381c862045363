"""The Controller service over real mutual TLS and a real database, with real agents.

The live servers here are stand-ins that only hold what they were assigned
and report it (the real ``LiveServer`` is in test_controller_live_tree.py);
the Controller, its agents, the link, TLS and the database are the real ones.
"""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import ssl
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from tests.controller.controller_support import World, eventually
from townhall import inprocess
from townhall.center import attendance, live
from townhall.center.tables import Event, TicketCredential
from townhall.config import Settings
from townhall.controller import link
from townhall.controller.agent import ControllerAgent, agent_ssl_context
from townhall.controller.identity import (
    LiveIdentity,
    controller_ssl_context,
    issue_local_identity,
)
from townhall.controller.service import ControllerService, server_ssl_context
from townhall.inprocess import InProcessSources
from townhall.live.attendance import Visit
from townhall.live.backoff import Backoff
from townhall.live.events import AssignmentReceived, ServerRole
from townhall.live.floor import Removed
from townhall.pki import DevCA
from townhall.store.conventions import now_utc
from townhall.wire.messages import Poll, Question


@dataclass(frozen=True, slots=True)
class Held:
    event_id: int
    role: str
    upstream: str
    participants: int = 0
    children: tuple[str, ...] = ()
    removed: tuple[Removed, ...] = ()
    attendance: tuple[Visit, ...] = ()
    attendance_missed: int = 0
    polls: tuple[Poll, ...] = ()
    questions: tuple[Question, ...] = ()
    record_version: int = 0


@dataclass
class StandIn:
    """A live server reduced to what the agent uses: it holds its assignments."""

    upstream: str = "up"
    rooms: dict[int, AssignmentReceived] = field(default_factory=dict)
    keys: list[Ed25519PublicKey] = field(default_factory=list)
    ended: list[int] = field(default_factory=list)
    removed: dict[int, tuple[Removed, ...]] = field(default_factory=dict)  # what it reports
    visits: dict[int, tuple[Visit, ...]] = field(default_factory=dict)  # what it reports

    def assign(self, assignment: AssignmentReceived, center_public_key: Ed25519PublicKey) -> None:
        self.rooms[assignment.event_id] = assignment
        self.keys.append(center_public_key)

    def end(self, event_id: int) -> None:
        self.rooms.pop(event_id, None)
        self.ended.append(event_id)

    def status(self) -> list[Held]:
        return [
            Held(
                e,
                a.role.value,
                "none" if a.role is ServerRole.MAIN else self.upstream,
                removed=self.removed.get(e, ()),
                attendance=self.visits.get(e, ()),
            )
            for e, a in self.rooms.items()
        ]

    def load(self) -> tuple[int, int]:
        return 0, 100


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    world = World(tmp_path / "data", database_url)
    world.server("main")
    world.server("child-a", 9444)
    world.server("child-b", 9445, zone="dmz")
    world.default_tree([("main", None), ("child-a", "main"), ("child-b", "main")])
    yield world
    world.close()


@asynccontextmanager
async def controller(world: World, port: int = 0) -> AsyncIterator[ControllerService]:
    service = world.controller(port)
    await service.start()
    try:
        yield service
    finally:
        await service.close()


@asynccontextmanager
async def agent(
    world: World, service: ControllerService, name: str, server: StandIn
) -> AsyncIterator[ControllerAgent]:
    identity = issue_local_identity(world.settings, name, ["127.0.0.1"])
    running = ControllerAgent(
        f"127.0.0.1:{service.port}",
        identity.link_ssl(),
        server,
        report_seconds=0.2,
        backoff=Backoff(initial=0.05, maximum=0.2),
    )
    task = asyncio.ensure_future(running.run())
    try:
        yield running
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def raw_link(
    service: ControllerService, identity: LiveIdentity
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection(
        "127.0.0.1", service.port, ssl=identity.link_ssl(), server_hostname="127.0.0.1"
    )


async def read_to_end(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        while chunk := await reader.read(65536):
            data += chunk
    except (ConnectionError, ssl.SSLError):
        pass
    return data


async def test_a_due_event_is_assigned_over_the_tree_and_becomes_ready(world: World) -> None:
    event_id = world.schedule()
    world.ticket(event_id)
    main, a, b = StandIn(), StandIn(upstream="connecting"), StandIn()
    async with controller(world) as service:
        async with (
            agent(world, service, "main", main),
            agent(world, service, "child-a", a),
            agent(world, service, "child-b", b),
        ):
            await eventually(lambda: event_id in a.rooms and event_id in b.rooms, "assigned")
            await eventually(lambda: event_id in main.rooms, "the main assigned")
            assignment = main.rooms[event_id]
            assert assignment.role is ServerRole.MAIN
            assert len(assignment.credentials) == 1 and assignment.event_keys
            assert set(assignment.children) == {"child-a", "child-b"}
            assert a.rooms[event_id].parent == "127.0.0.1:9443"
            assert main.keys[0] == live.center_public_key(world.settings)

            # child-a is not linked Up yet: preparing, with every server shown.
            await eventually(
                lambda: world.live_state(event_id)[0] == "preparing", "preparing recorded"
            )
            state, servers = world.live_state(event_id)
            assert {s.name: (s.role, s.zone, s.connected) for s in servers} == {
                "main": ("main", "internal", True),
                "child-a": ("child", "internal", True),
                "child-b": ("child", "dmz", True),
            }
            a.upstream = "up"
            await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")

            # A late registration reaches every server at the next tick.
            world.ticket(event_id, "olga")
            await eventually(
                lambda: all(len(s.rooms[event_id].credentials) == 2 for s in (main, a, b)),
                "the new credential everywhere",
            )
            # A revoked one too.
            world.revoke_all(event_id)
            await eventually(
                lambda: all(len(s.rooms[event_id].revoked) == 1 for s in (main, a, b)),
                "revoked everywhere",
            )
            assert len(main.rooms[event_id].credentials) == 1

            # A cancelled event is torn down everywhere.
            world.cancel(event_id)
            await eventually(
                lambda: all(event_id in s.ended for s in (main, a, b)), "ended everywhere"
            )
            await eventually(lambda: world.live_state(event_id)[0] == "ended", "ended recorded")
            await eventually(lambda: world.stored() == [], "forgotten")


async def test_a_server_that_drops_degrades_the_tree_and_gets_everything_again(
    world: World,
) -> None:
    event_id = world.schedule()
    main, a, b = StandIn(), StandIn(), StandIn()
    async with controller(world) as service:
        async with agent(world, service, "main", main), agent(world, service, "child-a", a):
            async with agent(world, service, "child-b", b):
                await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")
                first = b.rooms[event_id]
            await eventually(lambda: world.live_state(event_id)[0] == "degraded", "degraded")
            servers = {s.name: s.connected for s in world.live_state(event_id)[1]}
            assert servers == {"main": True, "child-a": True, "child-b": False}

            again = StandIn()
            async with agent(world, service, "child-b", again):
                await eventually(lambda: event_id in again.rooms, "assigned again")
                assert again.rooms[event_id] == first
                await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready again")


async def test_a_restarted_controller_sends_the_same_assignments_and_the_tree_stays_ready(
    world: World,
) -> None:
    event_id = world.schedule()
    main, a, b = StandIn(), StandIn(), StandIn()
    async with controller(world) as first:
        port = first.port
        async with (
            agent(world, first, "main", main),
            agent(world, first, "child-a", a),
            agent(world, first, "child-b", b),
        ):
            await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")
            before = {n: s.rooms[event_id] for n, s in (("main", main), ("a", a), ("b", b))}
            rows = world.stored()
            assert len(rows) == 3
            await first.close()
            # The agents keep retrying; a new Controller on the same port takes over.
            for server in (main, a, b):
                server.rooms.clear()
            async with controller(world, port) as second:
                await eventually(lambda: second.linked == {"main", "child-a", "child-b"}, "back")
                await eventually(
                    lambda: all(event_id in s.rooms for s in (main, a, b)), "assigned again"
                )
                after = {n: s.rooms[event_id] for n, s in (("main", main), ("a", a), ("b", b))}
                assert after == before
                assert world.stored() == rows
                await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")


async def test_an_event_a_server_holds_but_is_not_its_own_is_ended_there(world: World) -> None:
    stale = StandIn()
    stale.rooms[4242] = AssignmentReceived(
        event_id=4242,
        title="gone",
        role=ServerRole.MAIN,
        credentials={},
        event_keys=(b"k" * 32,),
    )
    async with controller(world) as service, agent(world, service, "main", stale):
        await eventually(lambda: 4242 in stale.ended, "the stale room ended")


async def test_a_certificate_from_another_ca_is_refused(world: World, tmp_path: Path) -> None:
    other = DevCA.ensure(tmp_path / "other-ca")
    issued = other.issue("main", ["127.0.0.1"], client=True)
    trusted = issue_local_identity(world.settings, "main", ["127.0.0.1"])
    context = agent_ssl_context(str(trusted.ca_file), str(issued.cert_file), str(issued.key_file))
    async with controller(world) as service:
        received = b""
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", service.port, ssl=context, server_hostname="127.0.0.1"
            )
        except (ConnectionError, ssl.SSLError):
            pass  # refused in the handshake (TLS 1.2)
        else:
            # TLS 1.3: the client's handshake ends first, and the refusal comes as an alert.
            writer.write(link.encode_frame(link.Hello(version=1)))
            received = await read_to_end(reader)
            writer.close()
        assert received == b""
        assert service.linked == frozenset()


async def test_a_live_servers_certificate_of_the_same_ca_is_not_taken_for_the_controller(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """An impostor with a certificate the CA issued to a live server, naming the
    Controller's host: the Controller's own code, but not its certificate."""
    world.schedule()
    impostor = issue_local_identity(world.settings, "child-b", ["127.0.0.1"])
    service = ControllerService(
        world.settings,
        sessions=world.sessions,
        sources=InProcessSources(world.sessions),
        ssl_context=server_ssl_context(
            str(impostor.cert_file), str(impostor.key_file), str(impostor.ca_file)
        ),
        center_key=live.center_public_key(world.settings),
        port=0,
    )
    await service.start()
    main = StandIn()
    try:
        with caplog.at_level("INFO", logger="townhall.controller.agent"):
            async with agent(world, service, "main", main) as running:
                await eventually(lambda: "not the Controller" in caplog.text, "the refusal")
                assert not running.linked and running.welcome is None
        assert main.rooms == {} and service.linked == frozenset()
    finally:
        await service.close()

    # the real Controller's certificate, from the same CA, says it is the Controller
    async with controller(world) as real, agent(world, real, "main", main) as running:
        await eventually(lambda: running.linked, "linked to the real Controller")


async def test_an_unregistered_server_is_refused_with_a_clear_message(world: World) -> None:
    ghost = StandIn()
    async with controller(world) as service, agent(world, service, "ghost", ghost) as running:
        await eventually(lambda: running.refusal is not None, "refused")
        assert running.refusal is not None
        assert running.refusal.code is link.ByeCode.UNKNOWN_SERVER
        assert "ghost" in running.refusal.message
        assert "registered" in running.refusal.message
        assert not running.linked and service.linked == frozenset()


async def test_garbage_on_one_link_closes_that_link_only(world: World) -> None:
    event_id = world.schedule()
    main = StandIn()
    async with controller(world) as service, agent(world, service, "main", main):
        await eventually(lambda: event_id in main.rooms, "main assigned")
        identity = issue_local_identity(world.settings, "child-a", ["127.0.0.1"])
        reader, writer = await raw_link(service, identity)
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\xff" * 64)
        received = await read_to_end(reader)
        writer.close()
        core = link.LinkConnection(link.Side.AGENT)
        core.send(link.Hello(version=1))
        messages = core.receive_data(received)
        assert isinstance(messages[0], link.Bye)
        assert messages[0].code is link.ByeCode.PROTOCOL_ERROR
        # The other link carries on: a late registration still reaches it.
        assert service.linked == {"main"}
        world.ticket(event_id)
        await eventually(lambda: len(main.rooms[event_id].credentials) == 1, "still served")


async def test_a_second_link_of_the_same_server_replaces_the_first(world: World) -> None:
    event_id = world.schedule()
    old, new = StandIn(), StandIn()
    async with controller(world) as service, agent(world, service, "main", old) as first:
        await eventually(lambda: event_id in old.rooms, "assigned")
        async with agent(world, service, "main", new):
            await eventually(lambda: event_id in new.rooms, "assigned to the newer link")
            await eventually(
                lambda: first.refusal is not None and first.refusal.code is link.ByeCode.REPLACED,
                "the older one told",
            )
            assert service.linked == {"main"}


@pytest.mark.postgres
@pytest.mark.skipif(
    not os.environ.get("TOWNHALL_TEST_POSTGRES_URL"),
    reason="the active Controller's lock is PostgreSQL's",
)
async def test_a_standby_controller_takes_over_when_the_active_one_stops(world: World) -> None:
    event_id = world.schedule()
    async with controller(world) as active:
        await active.ticked()
        standby = world.controller()
        starting = asyncio.ensure_future(standby.start())
        await eventually(lambda: world.live_state(event_id)[0] != "scheduled", "the active ticks")
        assert not starting.done()  # it waits for the lock the active one holds
        await active.close()
        await starting
    try:
        main = StandIn()
        async with agent(world, standby, "main", main):
            await eventually(lambda: event_id in main.rooms, "assigned by the new active one")
    finally:
        await standby.close()


async def test_an_idle_link_stays_up_for_many_keepalives(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    # Nothing is due, so the Controller has nothing to send, and the agent's reports
    # keep the Controller from pinging: the agent must ping, not drop the quiet link.
    world = World(tmp_path / "data", database_url, keepalive_seconds=0.5)  # agent reports: 0.2 s
    world.server("main")
    caplog.set_level("INFO", logger="townhall.controller")
    try:
        async with controller(world) as service, agent(world, service, "main", StandIn()) as ag:
            await ag.wait_linked()
            await asyncio.sleep(2.5)  # five keepalives; three of silence would drop the link
            links = [r for r in caplog.records if "is linked" in r.getMessage()]
            assert len(links) == 1, [r.getMessage() for r in caplog.records]
            assert "main" in service.linked
    finally:
        world.close()


async def test_the_main_servers_removals_reach_the_center_and_a_childs_do_not(
    world: World,
) -> None:
    event_id = world.schedule()
    world.ticket(event_id, "mike")
    world.ticket(event_id, "olga")
    with world.sessions() as session:
        ids = dict(
            session.execute(
                select(TicketCredential.username, TicketCredential.id).where(
                    TicketCredential.event_id == event_id
                )
            ).all()
        )
    main, a, b = StandIn(), StandIn(), StandIn()
    # A child claims olga was removed: only the event's main server decides that.
    a.removed[event_id] = (Removed(ids["olga"], "olga", ids["mike"], "mike"),)
    main.removed[event_id] = (Removed(ids["mike"], "mike", ids["olga"], "olga"),)

    def recorded() -> list[tuple[str, str]]:
        with world.sessions() as session:
            event = session.get(Event, event_id)
            assert event is not None
            return [(r.name, r.removed_by) for r in live.removals(session, event)]

    async with controller(world) as service:
        async with (
            agent(world, service, "main", main),
            agent(world, service, "child-a", a),
            agent(world, service, "child-b", b),
        ):
            await eventually(lambda: recorded() != [], "the removal recorded")
            await eventually(lambda: ids["mike"] in main.rooms[event_id].revoked, "revoked")
    assert recorded() == [("mike", "olga")]


async def test_a_controller_with_only_the_centers_public_key_forms_the_tree(
    world: World, tmp_path: Path
) -> None:
    event_id = world.schedule()
    world.ticket(event_id)  # the Center signs with its key, made in <data>/center
    public = live.center_public_key(world.settings).public_bytes(Encoding.Raw, PublicFormat.Raw)
    # The Controller's machine has no Center key folder, only the public key in a setting.
    key_folder = world.settings.data / "center"
    shutil.move(key_folder, tmp_path / "the-centers-machine")
    settings = Settings(
        data=world.settings.data,
        center={"database_url": world.settings.database_url},
        controller={
            **world.settings.controller.model_dump(),
            "center_public_key": base64.b64encode(public).decode(),
        },
    )
    service = ControllerService(
        settings,
        sessions=world.sessions,
        sources=InProcessSources(world.sessions),
        ssl_context=controller_ssl_context(settings),
        center_key=inprocess.center_key(settings),
    )
    main, a, b = StandIn(), StandIn(), StandIn()
    await service.start()
    try:
        async with (
            agent(world, service, "main", main),
            agent(world, service, "child-a", a),
            agent(world, service, "child-b", b),
        ):
            await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")
            assert main.rooms[event_id].credentials and set(main.rooms[event_id].children) == {
                "child-a",
                "child-b",
            }
            assert {key.public_bytes(Encoding.Raw, PublicFormat.Raw) for key in main.keys} == {
                public
            }
    finally:
        await service.close()
    assert not key_folder.exists()  # nothing read, or made, a signing key here


def test_a_center_public_key_that_is_not_32_bytes_of_base64_is_refused(tmp_path: Path) -> None:
    for bad in ("not base64!", base64.b64encode(b"k" * 31).decode()):
        with pytest.raises(ValueError, match="base64 of 32 bytes"):
            Settings(data=tmp_path, controller={"center_public_key": bad})


async def test_bad_attendance_from_one_server_is_refused_and_the_others_is_kept(
    world: World,
) -> None:
    event_id = world.schedule()
    world.ticket(event_id, "mike")
    with world.sessions() as session:
        mike = session.scalar(
            select(TicketCredential.id).where(TicketCredential.event_id == event_id)
        )
    assert mike is not None
    now = time.time()
    main = StandIn()
    main.visits[event_id] = (Visit(mike, "mike", now - 120),)

    def people() -> list[tuple[str, str, str | None]]:
        with world.sessions() as session:
            event = session.get(Event, event_id)
            assert event is not None
            found = attendance.report(session, event, now_utc())
            return [(p.name, s.server, s.ended_by) for p in found.people for s in p.stays]

    report = {"event_id": event_id, "role": "child", "upstream": "up", "participants": 1}
    visit = {"credential_id": mike, "name": "mike", "joined_at": now}
    bad = [
        [visit] * (link.MAX_VISITS + 1),  # oversized
        [visit | {"left_at": now - 1}],  # leaves before it came
        [visit | {"joined_at": "now"}],  # not a time
    ]
    async with controller(world) as service, agent(world, service, "main", main):
        await eventually(lambda: people() == [("mike", "main", None)], "main's visit kept")
        identity = issue_local_identity(world.settings, "child-a", ["127.0.0.1"])
        for attendance_sent in bad:
            reader, writer = await raw_link(service, identity)
            core = link.LinkConnection(link.Side.AGENT)
            writer.write(core.send(link.Hello(version=1)))
            payload = msgspec.msgpack.encode(
                {"type": "status", "events": [report | {"attendance": attendance_sent}]}
            )
            writer.write(len(payload).to_bytes(4, "big") + payload)
            messages = core.receive_data(await read_to_end(reader))
            writer.close()
            # A clear refusal, on that link alone.
            assert isinstance(messages[-1], link.Bye)
            assert messages[-1].code is link.ByeCode.PROTOCOL_ERROR
            assert "malformed" in messages[-1].message
        # Nothing of it was kept, and the main server's link and reports go on.
        assert service.linked == {"main"}
        main.visits[event_id] = (Visit(mike, "mike", now - 120, now - 60),)
        await eventually(lambda: people() == [("mike", "main", "left")], "main's leave kept")
