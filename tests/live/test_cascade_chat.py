"""Chat through the tree: every participant gets each message once, in one order for all."""

from __future__ import annotations

from tests.live.live_support import Center, Client, Network, World, tree
from townhall.live import EventEnded, ServerRole, Upstream
from townhall.wire import AuthFailed, AuthFailure, ByeReason, ErrorCode, GiveFloor


def test_four_participants_on_three_servers_see_one_roster(world: World) -> None:
    for client in world.everyone:
        assert client.auth is not None and client.is_open
        assert sorted(client.roster) == ["ana", "bo", "cy", "di"]
    assert world.ana.roster["ana"].moderator and not world.bo.roster["bo"].moderator
    seats = world.main.room.floor.seats if world.main.room.floor else {}
    assert {name: seat.server for name, seat in seats.items()} == {
        "ana": "main",
        "bo": "child-a",
        "cy": "child-b",
        "di": "child-b",
    }


def test_chat_both_ways_reaches_everyone_exactly_once_in_the_main_servers_order(
    world: World,
) -> None:
    world.bo.chat("from a, 1")
    world.ana.chat("from main, 1")
    world.cy.chat("from b, 1")
    world.bo.chat("from a, 2")
    world.di.chat("from b, 2")
    world.ana.chat("from main, 2")
    world.net.pump()

    log = [(e.posted.sender, e.posted.text) for e in world.main.room.chat_log]
    assert [e.seq for e in world.main.room.chat_log] == [1, 2, 3, 4, 5, 6]
    assert sorted(log) == sorted(
        [
            ("bo", "from a, 1"),
            ("ana", "from main, 1"),
            ("cy", "from b, 1"),
            ("bo", "from a, 2"),
            ("di", "from b, 2"),
            ("ana", "from main, 2"),
        ]
    )
    for client in world.everyone:
        assert client.public_chat() == log, client
    # each sender's own order holds
    assert [t for s, t in log if s == "bo"] == ["from a, 1", "from a, 2"]
    # the children's copies of the log carry the main server's numbers
    for child in (world.a, world.b):
        assert [(e.seq, e.posted.text) for e in child.room.chat_log] == [
            (e.seq, e.posted.text) for e in world.main.room.chat_log
        ]


def test_private_chat_reaches_only_sender_and_recipient_and_only_their_servers(
    world: World,
) -> None:
    world.di.chat("psst, bo", to="bo")
    world.net.pump()
    assert [(c.sender, c.text, c.to) for c in world.bo.chats] == [("di", "psst, bo", "bo")]
    assert [(c.sender, c.to) for c in world.di.chats] == [("di", "bo")]
    assert world.ana.chats == [] and world.cy.chats == []
    # child-a holds it (bo is there), as does child-b (di is there); the main logs it
    assert len(world.a.room.chat_log) == len(world.b.room.chat_log) == 1

    world.cy.chat("cy to ana", to="ana")
    world.net.pump()
    assert [c.text for c in world.ana.chats] == ["cy to ana"]
    assert len(world.a.room.chat_log) == 1  # nobody on child-a is in that one
    world.bo.chat("hello all")
    world.net.pump()
    assert [c.text for c in world.bo.chats] == ["psst, bo", "hello all"]


def test_chat_to_someone_not_here_is_refused(world: World) -> None:
    world.bo.chat("hello?", to="nobody")
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.UNKNOWN_MEMBER]
    assert world.main.room.chat_log == ()


def test_a_joining_participant_gets_the_recent_history_it_may_see(
    world: World, issuer: Center
) -> None:
    world.ana.chat("one")
    world.bo.chat("secret", to="cy")
    world.cy.chat("two")
    world.net.pump()
    pat = world.net.participant(world.a, "pat")
    assert pat.public_chat() == [("ana", "one"), ("cy", "two")]
    assert all(c.to is None for c in pat.chats)


def test_history_on_join_is_bounded(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main", history_on_join=3)
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    ana = net.participant(main, "ana")
    for n in range(10):
        ana.chat(f"m{n}")
    net.pump()
    bo = net.participant(main, "bo")
    assert [t for _, t in bo.public_chat()] == ["m7", "m8", "m9"]


def test_the_main_log_keeps_only_the_newest_entries(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main", chat_log_size=5)
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    ana = net.participant(main, "ana")
    for n in range(12):
        ana.chat(f"m{n}")
    net.pump()
    assert [e.seq for e in main.room.chat_log] == [8, 9, 10, 11, 12]
    assert len(ana.chats) == 12


def test_a_grandchild_gets_chat_and_media_through_two_hops(issuer: Center) -> None:
    net, main, a, _b = tree(issuer)
    grandchild = net.add_server("grandchild")
    net.assign(
        a,
        issuer.assignment(
            ServerRole.CHILD,
            parent=main.address,
            link_secret="a" * 24,
            children=("grandchild",),
        ),
    )
    net.assign(
        grandchild,
        issuer.assignment(ServerRole.CHILD, parent=a.address, link_secret="g" * 24),
    )
    ana = net.participant(main, "ana")
    bo = net.participant(grandchild, "bo")
    cy = net.participant(a, "cy")
    assert sorted(bo.roster) == ["ana", "bo", "cy"]
    bo.chat("from two hops down")
    ana.chat("from the top")
    cy.chat("to bo", to="bo")
    net.pump()
    log = [(e.posted.sender, e.posted.text) for e in main.room.chat_log if e.posted.to is None]
    assert sorted(log) == [("ana", "from the top"), ("bo", "from two hops down")]
    for client in (ana, bo, cy):
        assert client.public_chat() == log
    assert [c.text for c in bo.chats if c.to] == ["to bo"]
    assert main.room.floor is not None and main.room.floor.seats["bo"].server == "grandchild"

    ana.send(GiveFloor(name="bo"))
    bo.open_stream()
    net.pump()
    bo.speak()
    net.pump()
    assert len(ana.media) == len(cy.media) == 1 and bo.media == []


def test_ending_the_event_closes_everyone_down_the_tree(world: World) -> None:
    world.main.dispatcher.handle(EventEnded(), world.net.now)
    world.net.pump()
    for client in world.everyone:
        assert client.closed is not None and client.closed.reason is ByeReason.EVENT_ENDED
    assert world.a.room.upstream is Upstream.NONE and world.net.pipes == []
    late = world.net.join(world.b, Client("late", world.bo.ticket, world.net.now))
    assert isinstance(late.auth, AuthFailed) and late.auth.reason is AuthFailure.EVENT_NOT_LIVE
