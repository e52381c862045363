"""The Dispatcher's duties besides relaying: probes, keepalive, idle peers, rate limits."""

from __future__ import annotations

from tests.live.live_support import START, Center, Client, Network
from townhall.live import Dispatcher, EventRoom, RoomSettings, ServerRole
from townhall.wire import ByeReason, ErrorCode, Ping, Pong


def test_a_probing_client_gets_the_servers_load_before_it_authenticates(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main", capacity=500)
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    net.participant(main, "ana")
    probe = Client("probe", b"never sent", net.now)
    conn = "main<probe"
    main.dispatcher.accept(conn, net.now)
    main.dispatcher.receive(conn, bytes(probe.outgoing), net.now)  # Hello
    probe.outgoing.clear()
    probe.receive(main.dispatcher.drain(conn, net.now), net.now)  # Welcome
    probe.outgoing.clear()  # the helper answered with Auth: a probe holds it back
    main.dispatcher.receive(conn, probe.conn.send(Ping(nonce=7)), net.now)
    probe.receive(main.dispatcher.drain(conn, net.now), net.now)
    pong = probe.messages[-1]
    assert isinstance(pong, Pong) and pong.nonce == 7
    assert pong.load is not None and (pong.load.participants, pong.load.capacity) == (1, 500)


def test_an_idle_participant_is_pinged_then_closed_and_leaves_the_roster(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main")
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    ana = net.participant(main, "ana")
    bo = net.participant(main, "bo")
    ana_conn, bo_conn = net.pipe_of(ana).conn, net.pipe_of(bo).conn
    net.pipe_of(bo).paused = True  # bo hears nothing and says nothing
    for _ in range(5):
        net.now += 15
        for conn in (ana_conn, bo_conn):
            due = main.dispatcher.timer(conn)
            if due is not None and due <= net.now:
                main.dispatcher.handle_timer(conn, net.now)
        net.pump()  # ana answers her pings
    assert ana.is_open and sorted(ana.roster) == ["ana"]
    assert main.room.local_members == frozenset({"ana"})
    assert any(isinstance(m, Ping) for m in ana.messages)
    assert all(pipe.client is not bo for pipe in net.pipes)
    assert bo.closed is not None and bo.closed.reason is ByeReason.IDLE_TIMEOUT


def test_a_participant_who_floods_is_told_to_slow_down(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main", request_burst=5, request_rate=1.0)
    net.assign(main, issuer.assignment(ServerRole.MAIN))
    ana = net.participant(main, "ana")
    for n in range(8):
        ana.chat(f"{n}")
    net.pump()
    assert len(ana.chats) == 5 and [e.code for e in ana.errors] == [ErrorCode.RATE_LIMITED] * 3
    net.step(2)
    ana.chat("later")
    net.pump()
    assert ana.chats[-1].text == "later"


def test_tickets_are_checked_against_the_wall_clock_and_timers_run_on_the_monotonic_one(
    issuer: Center,
) -> None:
    """The asyncio shell gives the loop's clock (seconds since boot, say) and the Unix time."""
    wall, monotonic = START, 1_000.0
    room = EventRoom(
        RoomSettings(server_name="main", center_public_key=issuer.signing_key.public_key()),
        jitter=lambda: 0.0,
    )
    dispatcher = Dispatcher(room)
    dispatcher.handle(issuer.assignment(ServerRole.MAIN), monotonic, wall)
    credential = next(c for c in issuer.credentials.values() if c.username == "ana")
    ana = Client("ana", issuer.sealed(credential, wall), monotonic)
    dispatcher.accept("ana", monotonic)
    dispatcher.receive("ana", bytes(ana.outgoing), monotonic)  # Hello
    ana.outgoing.clear()
    ana.receive(dispatcher.drain("ana", monotonic), monotonic)  # Welcome; Auth goes out
    monotonic += 0.5
    dispatcher.receive("ana", bytes(ana.outgoing), monotonic, wall + 0.5)
    ana.receive(dispatcher.drain("ana", monotonic), monotonic)
    assert ana.auth is not None and ana.name == "ana", ana.auth  # not "expired"
    # keepalive is due on the timers' clock, 15 s after the last byte heard
    assert dispatcher.timer("ana") == monotonic + 15
