"""Failures of a running event, end to end: a child server killed, a parent link cut and
restored, the Controller restarted. After each, no chat message is lost or doubled and
everybody's view of the event agrees.

The parent link is cut by a TCP relay that the test owns: the children reach
the main server through it (the Manager registers the relay's port as the
main server's address), so closing the relay cuts exactly the links Up while
the processes keep running. Participants there join the children only.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.e2e_support import (
    LiveSystem,
    Watcher,
    chat_settled,
    free_port,
    running_system,
    ticket_for,
)
from tests.e2e.test_live_event_e2e import schedule_now
from tests.support import Center
from townhall.client.events import ConnectionLost, Joined


@pytest.fixture
def system(center: Center, tmp_path: Path) -> Iterator[LiveSystem]:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    yield from running_system(prepared)


def count(watcher: Watcher, text: str) -> int:
    return sum(1 for _, said in watcher.chat() if said == text)


async def everyone_once(people: dict[str, Watcher], texts: list[str]) -> None:
    for watcher in people.values():
        await watcher.wait_for(
            lambda w=watcher: all(count(w, t) >= 1 for t in texts), f"{texts}", timeout=30
        )
    await chat_settled(people, next(iter(people)))  # a duplicate would have come by now
    for name, watcher in people.items():
        for text in texts:
            assert count(watcher, text) == 1, f"{name} got {text!r} {count(watcher, text)} times"


async def join_all(
    center: Center, event_id: int, placement: dict[str, str]
) -> dict[str, Watcher]:
    people = {
        name: Watcher(ticket_for(center, name, event_id), server)
        for name, server in placement.items()
    }
    for watcher in people.values():
        await watcher.participant.join()
    for watcher in people.values():
        await watcher.wait_for(
            lambda w=watcher: len(w.participant.roster) == len(people), "everyone"
        )
    return people


async def test_participants_of_a_killed_child_rejoin_elsewhere_and_get_what_they_missed(
    system: LiveSystem, center: Center
) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        await system.wait_state(api, event_id, "ready")
        people = await join_all(
            center, event_id, {"olga": "main", "mike": "child-a", "pia": "child-dmz"}
        )
        people["mike"].participant.say("before the crash")
        await everyone_once(people, ["before the crash"])

        system.kill("child-a")  # SIGKILL: no Bye, the sockets just die
        await people["mike"].wait_for(
            lambda: any(isinstance(e, ConnectionLost) for e in people["mike"].events), "the loss"
        )
        people["olga"].participant.say("while mike was away")
        await people["mike"].wait_for(
            lambda: any(isinstance(e, Joined) and e.rejoin for e in people["mike"].events),
            "a rejoin",
            timeout=30,
        )
        assert people["mike"].participant.server in ("main", "child-dmz")
        await everyone_once(people, ["before the crash", "while mike was away"])
        await system.wait_state(api, event_id, "degraded")

        people["mike"].participant.say("back again")
        await everyone_once(people, ["back again"])
        system.start("child-a")
        await system.wait_state(api, event_id, "ready")
        for watcher in people.values():
            assert set(watcher.participant.roster) == {"olga", "mike", "pia"}
        for watcher in people.values():
            await watcher.participant.leave()

class Relay:
    """A TCP relay on loopback that can cut every connection through it and take new ones
    again later: the parent link's network path."""

    def __init__(self, port: int, target: int) -> None:
        self.port, self.target = port, target
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.writers):
            writer.transport.abort()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self.writers |= {writer, up_writer}

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.CancelledError):
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            sink.transport.abort()

        for task in (
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        ):
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


async def test_a_cut_parent_link_is_restored_and_the_chat_of_both_sides_arrives_once(
    center: Center,
) -> None:
    center.add_user("pia")
    prepared = LiveSystem.prepare(center, center.settings.data)
    relay = Relay(free_port(), prepared.ports["main"])
    with center.client("ada") as admin:
        servers = admin.get("/manager/api/v1/servers").json()
        main_id = next(s["id"] for s in servers if s["name"] == "main")
        moved = admin.patch(f"/manager/api/v1/servers/{main_id}", json={"port": relay.port})
        assert moved.status_code == 200, moved.text
    await relay.open()
    # The main server keeps listening on its own port; only the address the others
    # are given (the registry's) goes through the relay.
    prepared.extra_args["main"] = ["--listen", f"127.0.0.1:{prepared.ports['main']}"]
    system_iter = running_system(prepared)
    system = next(system_iter)
    try:
        event_id = schedule_now(center)
        with center.client("olga") as api:
            await system.wait_state(api, event_id, "ready")
            people = await join_all(
                center, event_id, {"olga": "child-a", "mike": "child-dmz", "pia": "child-a"}
            )
            people["mike"].participant.say("before the cut")
            await everyone_once(people, ["before the cut"])

            await relay.cut()
            await system.wait_state(api, event_id, "degraded")
            # Each side keeps talking while cut off; a child holds its members' chat.
            people["olga"].participant.say("from a during the cut")
            people["mike"].participant.say("from dmz during the cut")
            await asyncio.sleep(1)  # the cut lasts while both messages wait
            await relay.open()
            await system.wait_state(api, event_id, "ready")
            await everyone_once(
                people, ["before the cut", "from a during the cut", "from dmz during the cut"]
            )
            orders = {name: w.chat() for name, w in people.items()}
            assert orders["olga"] == orders["mike"] == orders["pia"], orders
            for watcher in people.values():
                assert not any(isinstance(e, ConnectionLost) for e in watcher.events)
            for watcher in people.values():
                await watcher.participant.leave()
    finally:
        with contextlib.suppress(StopIteration):
            next(system_iter)
        await relay.cut()


async def test_a_restarted_controller_loses_nothing(system: LiveSystem, center: Center) -> None:
    event_id = schedule_now(center)
    with center.client("olga") as api:
        await system.wait_state(api, event_id, "ready")
        people = await join_all(
            center, event_id, {"olga": "main", "mike": "child-a", "pia": "child-dmz"}
        )
        system.kill("controller", signal.SIGTERM)
        people["mike"].participant.say("without a controller")
        await everyone_once(people, ["without a controller"])
        system.start("controller")
        await system.wait_state(api, event_id, "ready")
        # Registrations made now still reach the servers through the new Controller.
        center.add_user("zoe")
        zoe = Watcher(ticket_for(center, "zoe", event_id), "child-dmz")
        await zoe.participant.join()
        people["zoe"] = zoe
        people["pia"].participant.say("after the restart")
        await everyone_once(people, ["after the restart"])
        for watcher in people.values():
            assert not any(isinstance(e, ConnectionLost) for e in watcher.events)
        for watcher in people.values():
            await watcher.participant.leave()
