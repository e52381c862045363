"""The whole control plane: the Center's database, the real Controller, real live servers.

A main and a child ``LiveServer`` run with their agents (``command.run_live``),
identities issued by the development CA; an event is due in the Center; the
Controller forms the tree, the child links Up to the main with the secret the
Controller made, and the Center sees ``ready``. A Controller restart keeps it
so: the same assignments come again and the child's link Up is never cut.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.controller.controller_support import World, eventually
from townhall.controller.agent import ControllerAgent
from townhall.controller.command import LivePlan, run_live
from townhall.controller.identity import issue_local_identity
from townhall.controller.service import ControllerService
from townhall.live.server import LiveServer


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[World]:
    world = World(tmp_path / "data", database_url)
    world.server("main")
    world.server("child-a", zone="dmz")
    world.default_tree([("main", None), ("child-a", "main")])
    yield world
    world.close()


@asynccontextmanager
async def live_server(world: World, name: str, controller_port: int) -> AsyncIterator[LiveServer]:
    """A live server on a free port, registered there, with its agent linked."""
    identity = issue_local_identity(world.settings, name, ["127.0.0.1"])
    plan = LivePlan(name, "127.0.0.1:0", f"127.0.0.1:{controller_port}", 100)
    started: asyncio.Future[tuple[LiveServer, ControllerAgent]] = asyncio.Future()

    def ready(server: Any, agent: ControllerAgent) -> None:
        started.set_result((server, agent))

    task = asyncio.ensure_future(run_live(identity, plan, report_seconds=0.2, started=ready))
    try:
        server, _ = await asyncio.wait_for(asyncio.shield(started), 20)
        world.set_port(name, server.port)
        yield server
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@asynccontextmanager
async def controller(world: World, port: int = 0) -> AsyncIterator[ControllerService]:
    service = world.controller(port)
    await service.start()
    try:
        yield service
    finally:
        await service.close()


def held(server: LiveServer, event_id: int) -> dict[str, Any]:
    for status in server.status():
        if status.event_id == event_id:
            return {"role": status.role, "upstream": status.upstream, "children": status.children}
    return {}


async def test_a_tree_of_real_live_servers_becomes_ready_and_survives_a_controller_restart(
    world: World,
) -> None:
    async with controller(world) as first:
        port = first.port
        async with (
            live_server(world, "main", port) as main,
            live_server(world, "child-a", port) as child,
        ):
            # Registered at their real ports before the event is due.
            event_id = world.schedule()
            world.ticket(event_id)
            await eventually(lambda: world.live_state(event_id)[0] == "ready", "ready")
            assert held(main, event_id) == {
                "role": "main",
                "upstream": "none",
                "children": ("child-a",),
            }
            assert held(child, event_id)["upstream"] == "up"
            state, servers = world.live_state(event_id)
            assert {(s.name, s.role, s.upstream, s.connected) for s in servers} == {
                ("main", "main", "none", True),
                ("child-a", "child", "up", True),
            }

            await first.close()
            await eventually(
                lambda: world.live_state(event_id)[0] == "ready", "nothing recorded by a gone one"
            )
            async with controller(world, port) as second:
                await eventually(lambda: second.linked == {"main", "child-a"}, "linked again")
                await eventually(
                    lambda: second.planner.state_of(event_id).value == "ready", "ready"
                )
                # The re-sent assignments are the same: the link Up was never cut.
                assert held(child, event_id)["upstream"] == "up"
                assert held(main, event_id)["children"] == ("child-a",)
                await eventually(lambda: world.live_state(event_id)[0] == "ready", "recorded")

                # A cancelled event is torn down on the real servers too.
                world.cancel(event_id)
                await eventually(
                    lambda: not held(main, event_id) and not held(child, event_id), "rooms closed"
                )
                await eventually(lambda: world.live_state(event_id)[0] == "ended", "ended")
