"""A child that breaks the server-link protocol is cut off, and comes back."""

from __future__ import annotations

from tests.live.live_support import World
from townhall.wire import LinkRequest, encode_message
from townhall.wire.frames import HEADER_SIZE


def test_a_child_sending_a_bad_link_message_is_cut_off_and_its_members_leave(
    world: World,
) -> None:
    link = world.net.link_pipes(world.a)[0]
    good = encode_message(LinkRequest(name="bo", command_type=19, payload=b"\x90")).data
    bad = good[: HEADER_SIZE + 4] + b"\x03" + good[HEADER_SIZE + 5 :]  # a TakeFloor made an Auth
    assert bad != good
    world.main.dispatcher.receive(link.conn, bad, world.net.now)
    world.net.pump()
    assert "bo" not in world.ana.roster
    assert world.a.room.upstream.value in {"waiting", "connecting", "up"}
    world.net.step(1)
    assert "bo" in world.ana.roster  # it came back, with bo
