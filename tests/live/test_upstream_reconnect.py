"""A child that loses its parent: backoff, reconnect, resynchronise, and chat exactly once."""

from __future__ import annotations

import pytest

from tests.live.live_support import LINK_SECRETS, Center, Client, Network, World
from townhall.live import (
    AssignmentReceived,
    Backoff,
    ConnectUpstream,
    EventRoom,
    RequestWakeup,
    RoomSettings,
    ServerRole,
    TimerFired,
    Upstream,
    UpstreamConnected,
    UpstreamLost,
)
from townhall.live.room import UPSTREAM_TRANSITIONS, UpstreamInput
from townhall.wire import ErrorCode, GiveFloor, RaiseHand, UpstreamChanged


def test_backoff_grows_exponentially_to_its_cap_and_jitter_only_shortens_it() -> None:
    backoff = Backoff(initial=0.5, factor=2, maximum=30, jitter=0.5)
    assert [backoff.delay(n, 0.0) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert backoff.delay(3, 0.5) == 3.0
    assert backoff.delay(10_000, 0.999) == pytest.approx(15.015)
    with pytest.raises(ValueError):
        backoff.delay(1, 1.0)


def test_the_upstream_table_covers_the_lifecycle() -> None:
    assert UPSTREAM_TRANSITIONS[(Upstream.WAITING, UpstreamInput.WAKEUP)] is Upstream.CONNECTING
    assert all(
        UPSTREAM_TRANSITIONS[(state, UpstreamInput.LOST)] is Upstream.WAITING
        for state in (Upstream.CONNECTING, Upstream.HANDSHAKE, Upstream.SYNCING, Upstream.UP)
    )
    assert (Upstream.UP, UpstreamInput.WAKEUP) not in UPSTREAM_TRANSITIONS


def test_a_child_asks_for_its_parent_and_retries_with_backoff_from_the_time_given(
    issuer: Center,
) -> None:
    draws = iter([0.0, 0.5, 0.0])
    room = EventRoom(
        RoomSettings(server_name="child-a", center_public_key=issuer.signing_key.public_key()),
        jitter=lambda: next(draws),
    )
    assignment = issuer.assignment(
        ServerRole.CHILD, parent="main.test:9443", link_secret=LINK_SECRETS["child-a"]
    )
    assert room.handle(assignment, 100.0) == [ConnectUpstream("main.test:9443")]
    assert room.handle(UpstreamLost(), 100.2) == [RequestWakeup(100.7)]
    assert room.upstream is Upstream.WAITING
    assert room.handle(TimerFired(), 100.5) == [RequestWakeup(100.7)]  # early: not yet
    assert room.handle(TimerFired(), 100.7) == [ConnectUpstream("main.test:9443")]
    assert room.handle(UpstreamLost(), 101.0) == [RequestWakeup(101.75)]  # 1 s less 25 %
    assert room.handle(TimerFired(), 102.0) == [ConnectUpstream("main.test:9443")]
    commands = room.handle(UpstreamConnected("up-1"), 102.1)
    assert room.upstream is Upstream.HANDSHAKE and len(commands) == 1  # its Hello
    assert room.handle(UpstreamConnected("stray"), 102.2)[0].__class__.__name__ == "CloseConnection"


def test_a_child_keeps_its_participants_while_cut_off_and_catches_up_after(
    world: World,
) -> None:
    net, a = world.net, world.a
    world.bo.chat("before")
    net.pump()
    net.cut(a)
    assert a.room.upstream is Upstream.WAITING
    assert world.bo.is_open and a.room.local_members == frozenset({"bo"})
    assert "bo" not in world.ana.roster  # the main server dropped the branch it lost

    world.ana.chat("while a was away")
    world.cy.chat("me too")
    world.bo.chat("queued on a")
    world.bo.send(RaiseHand())
    net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.UNAVAILABLE]
    assert a.room.outgoing_chat == 1
    world.cy.leave()
    net.pump()

    attempts_before = len(net.connect_attempts["child-a"])
    for _ in range(4):  # 0.5, 1, 2, 4 s: each wakeup finds the parent still unreachable
        net.step(5)
    assert len(net.connect_attempts["child-a"]) == attempts_before + 4
    gaps = [
        t2 - t1
        for t1, t2 in zip(
            net.connect_attempts["child-a"][attempts_before:],
            net.connect_attempts["child-a"][attempts_before + 1 :],
            strict=False,
        )
    ]
    assert gaps == sorted(gaps)  # never sooner than before

    net.mend(a)
    net.step(30)
    assert a.room.upstream is Upstream.UP and a.room.outgoing_chat == 0
    expected = [(e.posted.sender, e.posted.text) for e in world.main.room.chat_log]
    assert expected == [
        ("bo", "before"),
        ("ana", "while a was away"),
        ("cy", "me too"),
        ("bo", "queued on a"),
    ]
    assert world.bo.public_chat() == expected  # the missed chat replayed, each once
    assert world.ana.public_chat() == expected and world.di.public_chat() == expected
    assert sorted(world.bo.roster) == ["ana", "bo", "di"]  # cy left while a was away
    assert sorted(world.ana.roster) == ["ana", "bo", "di"]


def test_chat_that_reached_the_main_server_before_the_link_broke_is_not_sent_twice(
    world: World,
) -> None:
    net, a = world.net, world.a
    bo_pipe = net.pipe_of(world.bo)
    link = net.link_pipes(a)[0]
    world.bo.chat("in flight")
    a.dispatcher.receive(bo_pipe.conn, bytes(world.bo.outgoing), net.now)
    world.bo.outgoing.clear()
    # child-a's bytes reach the main server, but the echo never comes back
    world.main.dispatcher.receive(link.conn, a.dispatcher.drain(link.child_conn, net.now), net.now)
    net.cut(a)
    world.bo.chat("not yet sent")
    net.pump()
    net.mend(a)
    net.step(1)
    texts = [e.posted.text for e in world.main.room.chat_log]
    assert texts == ["in flight", "not yet sent"]
    assert [t for _, t in world.bo.public_chat()] == texts


def test_chat_lost_on_the_way_up_is_sent_again_after_the_reconnect(world: World) -> None:
    net, a = world.net, world.a
    bo_pipe = net.pipe_of(world.bo)
    world.bo.chat("lost in the cut")
    a.dispatcher.receive(bo_pipe.conn, bytes(world.bo.outgoing), net.now)
    world.bo.outgoing.clear()
    net.cut(a)  # child-a's queue toward the main server is gone with the link
    net.mend(a)
    net.step(1)
    assert [e.posted.text for e in world.main.room.chat_log] == ["lost in the cut"]
    for client in world.everyone:
        assert [t for _, t in client.public_chat()] == ["lost in the cut"]


def test_participants_of_a_dead_server_rejoin_elsewhere_and_get_what_they_missed(
    world: World,
) -> None:
    net, a = world.net, world.a
    world.ana.chat("one")
    net.pump()
    # child-a dies: its link and its participants' connections go at once
    net.cut(a)
    net.hang_up(world.bo)
    world.ana.chat("two, while bo was between servers")
    net.pump()
    bo_again = net.join(world.b, Client("bo-again", world.bo.ticket, net.now))
    assert [t for _, t in bo_again.public_chat()] == ["one", "two, while bo was between servers"]
    assert world.main.room.floor is not None
    assert world.main.room.floor.seats["bo"].server == "child-b"


def test_a_stale_join_from_a_reconnecting_child_does_not_beat_the_newer_one(
    world: World,
) -> None:
    net, a, b = world.net, world.a, world.b
    net.cut(a)  # child-a still holds bo's old connection, but cannot say so
    net.step(0.25)
    bo_new = net.join(b, Client("bo-new", world.bo.ticket, net.now))
    world.ana.send(GiveFloor(name="bo"))
    net.pump()
    net.mend(a)
    net.step(1)
    assert a.room.upstream is Upstream.UP
    assert world.bo.closed is not None and bo_new.is_open
    floor = world.main.room.floor
    assert floor is not None and floor.seats["bo"].server == "child-b" and floor.holder == "bo"


def test_a_new_parent_in_the_assignment_moves_the_link(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main")
    a = net.add_server("child-a")
    b = net.add_server("child-b")
    net.assign(main, issuer.assignment(ServerRole.MAIN, children=("child-a", "child-b")))
    net.assign(a, issuer.assignment(ServerRole.CHILD, parent=main.address, link_secret="a" * 24))
    net.assign(
        b,
        issuer.assignment(ServerRole.CHILD, parent=main.address, link_secret="b" * 24, children=()),
    )
    bo = net.participant(b, "bo")
    ana = net.participant(main, "ana")
    moved: AssignmentReceived = issuer.assignment(
        ServerRole.CHILD, parent=a.address, link_secret="b" * 24
    )
    net.assign(
        a,
        issuer.assignment(
            ServerRole.CHILD, parent=main.address, link_secret="a" * 24, children=("child-b",)
        ),
    )
    net.assign(b, moved)
    assert b.room.upstream is Upstream.UP
    assert [p.server.name for p in net.link_pipes(b)] == ["child-a"]
    bo.chat("via a now")
    net.pump()
    assert ana.public_chat() == [("bo", "via a now")]


def upstream_notices(client: Client) -> list[bool]:
    return [m.reachable for m in client.messages if isinstance(m, UpstreamChanged)]


def test_participants_are_told_once_when_the_main_server_is_out_of_reach_and_when_back(
    world: World,
) -> None:
    net, a = world.net, world.a
    net.cut(a)
    assert upstream_notices(world.bo) == [False]
    for _ in range(3):  # more failed tries: no more notices
        net.step(5)
    assert upstream_notices(world.bo) == [False]
    assert upstream_notices(world.ana) == [] and upstream_notices(world.cy) == []

    world.cy.leave()
    net.pump()
    late = net.participant(a, "cy")  # joins child-a while its link is down: told at once
    assert upstream_notices(late) == [False]

    net.mend(a)
    net.step(30)
    assert a.room.upstream is Upstream.UP
    assert upstream_notices(world.bo) == [False, True]
    assert upstream_notices(late) == [False, True]
    assert a.room.told_down is False
