"""``Participant`` against real rooms over TLS: events, commands, media, and rejoining elsewhere."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import pytest

from tests.client.client_support import FAST, Issuer, RoomServer, Watcher, start_tree, wait_for
from townhall.client import (
    ChatReceived,
    ClientSettings,
    ConnectionLost,
    FloorChanged,
    HandsChanged,
    Joined,
    JoinFailed,
    Left,
    MediaReceived,
    NotConnected,
    Participant,
    Rejoining,
    RequestRefused,
    StateChanged,
    StreamStarted,
    event_json,
)
from townhall.live import ServerRole
from townhall.ticket import Role as TicketRole
from townhall.ticket import ServerEntry, TicketContents, Zone
from townhall.wire import ByeReason, Codec, ErrorCode, Settings, SpeakingMode


@contextlib.asynccontextmanager
async def joined(ticket: TicketContents, **options: object) -> AsyncIterator[Watcher]:
    participant = Participant(ticket, settings=FAST, **options)  # type: ignore[arg-type]
    await participant.join()
    watcher = Watcher(participant)
    try:
        yield watcher
    finally:
        await watcher.stop()


async def test_two_participants_chat_and_see_roster_floor_and_hands(issuer: Issuer) -> None:
    main = await RoomServer("main", issuer).start()
    ana_credential = issuer.credential("ana", TicketRole.MODERATOR)
    bo_credential = issuer.credential("bo")
    main.assign(issuer.assignment())
    servers = [main.entry()]
    try:
        async with (
            joined(issuer.ticket(ana_credential, servers)) as ana,
            joined(issuer.ticket(bo_credential, servers)) as bo,
        ):
            first = ana.events[0]
            assert isinstance(first, Joined) and first.name == "ana" and first.moderator
            assert first.server == "main" and first.event is not None
            assert ana.participant.ranking is not None
            await ana.wait(lambda e: isinstance(e, StateChanged) and e.title == "All hands")

            await ana.wait(lambda e: "bo" in ana.participant.roster)
            seq = ana.participant.say("welcome, bo")
            bo.participant.say("hi ana", to="ana")
            got = await bo.wait(lambda e: isinstance(e, ChatReceived) and e.sender == "ana")
            assert got == ChatReceived("ana", "welcome, bo", None, seq, sender_display_name="Ana")
            assert ana.participant.roster["bo"].shown == "Bo"  # the ticket's display name
            private = await ana.wait(lambda e: isinstance(e, ChatReceived) and e.to == "ana")
            assert (private.sender, private.text) == ("bo", "hi ana")  # type: ignore[union-attr]

            bo.participant.raise_hand()
            await ana.wait(lambda e: isinstance(e, HandsChanged) and e.raised == ("bo",))
            ana.participant.give_floor("bo")
            await bo.wait(lambda e: isinstance(e, FloorChanged) and e.holder == "bo")
            await ana.wait(lambda e: isinstance(e, HandsChanged) and e.raised == ())
            assert ana.participant.roster["bo"].floor

            bo.participant.mute("ana")  # not a moderator
            refused = await bo.wait(lambda e: isinstance(e, RequestRefused))
            assert refused.code is ErrorCode.NOT_ALLOWED  # type: ignore[union-attr]
            ana.participant.mute("bo")
            await bo.wait(
                lambda e: (
                    bo.participant.roster.get("bo") is not None
                    and bo.participant.roster["bo"].muted
                )
            )
            ana.participant.set_mode(SpeakingMode.OPEN)
            await bo.wait(lambda e: isinstance(e, StateChanged) and e.mode is SpeakingMode.OPEN)

            lines = [event_json(event) for event in bo.events]
            types = {line["type"] for line in lines}
            assert {"joined", "state", "roster", "chat", "floor", "error"} <= types
            chat = next(line for line in lines if line["type"] == "chat")
            assert chat == {
                "type": "chat",
                "sender": "ana",
                "display_name": "Ana",
                "text": "welcome, bo",
                "to": None,
                "seq": seq,
            }
        assert isinstance(ana.events[-1], Left) and ana.events[-1].reason is ByeReason.NORMAL
        assert not ana.events[-1].by_peer
    finally:
        await main.close()


async def test_audio_frames_reach_the_others_with_their_stream_owner(issuer: Issuer) -> None:
    main = await RoomServer("main", issuer).start()
    ana_credential = issuer.credential("ana", TicketRole.MODERATOR)
    bo_credential = issuer.credential("bo")
    main.assign(issuer.assignment())
    try:
        async with (
            joined(issuer.ticket(ana_credential, [main.entry()])) as ana,
            joined(issuer.ticket(bo_credential, [main.entry()])) as bo,
        ):
            stream_id = await ana.participant.open_stream(Codec.OPUS)
            started = await bo.wait(lambda e: isinstance(e, StreamStarted))
            assert started == StreamStarted(stream_id, "ana", Codec.OPUS)
            ana.participant.take_floor()
            await ana.wait(lambda e: isinstance(e, FloorChanged) and e.holder == "ana")
            for n in range(5):
                assert ana.participant.send_media(stream_id, bytes([n + 1]) * 30, 1000 * n)
            await bo.wait(lambda e: len(bo.of(MediaReceived)) == 5)
            frames = bo.of(MediaReceived)
            assert [f.seq for f in frames] == [0, 1, 2, 3, 4]
            assert {(f.owner, f.codec, f.stream_id) for f in frames} == {
                ("ana", Codec.OPUS, stream_id)
            }
            assert frames[2].payload == b"\x03" * 30 and frames[2].timestamp_us == 2000
            assert event_json(frames[0])["bytes"] == 30
            with pytest.raises(ValueError):
                ana.participant.send_media(stream_id + 99, b"x", 0)
    finally:
        await main.close()


async def test_a_removed_participant_is_told_and_cannot_join_again_with_its_ticket(
    issuer: Issuer,
) -> None:
    main = await RoomServer("main", issuer).start()
    ana_credential = issuer.credential("ana", TicketRole.MODERATOR)
    cy_credential = issuer.credential("cy")
    main.assign(issuer.assignment())
    cy_ticket = issuer.ticket(cy_credential, [main.entry()])
    try:
        async with (
            joined(issuer.ticket(ana_credential, [main.entry()])) as ana,
            joined(cy_ticket) as cy,
        ):
            await ana.wait(lambda e: "cy" in ana.participant.roster)
            ana.participant.remove("cy")
            left = await cy.wait(lambda e: isinstance(e, Left))
            assert left.reason is ByeReason.REMOVED and left.by_peer  # type: ignore[union-attr]
            assert not cy.of(ConnectionLost) and not cy.of(Rejoining)  # no rejoin after removal
            with pytest.raises(NotConnected):
                cy.participant.say("still here?")
            with pytest.raises(JoinFailed) as refused:
                await Participant(cy_ticket, settings=FAST).join()
            assert refused.value.reason == "not-allowed"
    finally:
        await main.close()


async def test_a_full_server_is_passed_over_for_the_next_in_the_ranking(issuer: Issuer) -> None:
    ana, bo = issuer.credential("ana"), issuer.credential("bo")
    main, child = await start_tree(issuer, ("child", Zone.INTERNAL))
    small = await RoomServer("small", issuer, capacity=1).start()
    main.assign(issuer.assignment(children=["child", "small"]))
    small.assign(issuer.assignment(ServerRole.CHILD, parent=main.address))
    await wait_for(lambda: small.room.upstream.value == "up")
    try:
        # "small" leads the ranking (the zone asked for), but has room for one.
        servers = [small.entry(zone=Zone.DMZ), child.entry()]
        async with joined(issuer.ticket(ana, servers), zone=Zone.DMZ) as first:
            assert first.participant.server == "small"
            async with joined(issuer.ticket(bo, servers), zone=Zone.DMZ) as second:
                ranking = second.participant.ranking
                assert ranking is not None and ranking.probes[0].server.name == "small"
                assert ranking.probes[0].full
                assert second.participant.server == "child"
    finally:
        for server in (small, child, main):
            await server.close()


async def test_when_its_server_dies_a_participant_rejoins_elsewhere_without_repeating_chat(
    issuer: Issuer,
) -> None:
    main, child = await start_tree(issuer, ("child", Zone.DMZ))
    ana_credential = issuer.credential("ana", TicketRole.MODERATOR)
    bo_credential = issuer.credential("bo")
    for server, assignment in (
        (main, issuer.assignment(children=["child"])),
        (child, issuer.assignment(ServerRole.CHILD, parent=main.address)),
    ):
        server.assign(assignment)
    servers = [main.entry(), child.entry()]
    try:
        async with (
            joined(issuer.ticket(ana_credential, servers), server="main") as ana,
            joined(issuer.ticket(bo_credential, servers), zone=Zone.DMZ) as bo,
        ):
            assert bo.participant.server == "child"
            stream_id = await bo.participant.open_stream()
            await ana.wait(lambda e: "bo" in ana.participant.roster)
            ana.participant.say("one")
            bo.participant.say("two")
            await bo.wait(lambda e: bo.chats() == [("ana", "one"), ("bo", "two")])

            child.kill()
            lost = await bo.wait(lambda e: isinstance(e, ConnectionLost))
            assert lost.server == "child"  # type: ignore[union-attr]
            again = await bo.wait(lambda e: isinstance(e, Joined) and e.rejoin)
            assert again.server == "main"  # type: ignore[union-attr]
            assert bo.of(Rejoining)[0].attempt == 1
            # The stream was opened again on main under the id bo keeps using.
            await wait_for(lambda: any(i.owner == "bo" for i in bo.participant.streams.values()))
            assert bo.participant.send_media(stream_id, b"\x01" * 20, 0)

            ana.participant.say("three")
            await bo.wait(lambda e: isinstance(e, ChatReceived) and e.text == "three")
            # main replayed its log on the rejoin: nothing shown twice.
            assert bo.chats() == [("ana", "one"), ("bo", "two"), ("ana", "three")]
            assert bo.participant.connected
    finally:
        await main.close()
        await child.close()


async def test_nothing_reachable_is_a_join_failure_that_says_why(issuer: Issuer) -> None:
    from tests.support import free_port

    gone = ServerEntry(name="gone", host="127.0.0.1", port=free_port(), zone=Zone.INTERNAL)
    with pytest.raises(JoinFailed) as failed:
        await Participant(issuer.ticket(issuer.credential("ana"), [gone]), settings=FAST).join()
    assert failed.value.reason == "unreachable" and "gone" in str(failed.value)


async def test_when_every_server_goes_away_the_session_ends_after_bounded_tries(
    issuer: Issuer,
) -> None:
    main = await RoomServer("main", issuer).start()
    credential = issuer.credential("ana")
    main.assign(issuer.assignment())
    participant = Participant(
        issuer.ticket(credential, [main.entry()]),
        settings=ClientSettings(rejoin_delay=0.01, rejoin_tries=2, probe_timeout=1.0),
    )
    await participant.join()
    watcher = Watcher(participant)
    await main.close()
    left = await participant.wait_closed()
    assert left.reason is ByeReason.CONNECTION_LOST and "2 tries" in left.message
    await watcher.stop()
    assert [e.attempt for e in watcher.of(Rejoining)] == [1, 2]
    assert isinstance(watcher.events[-1], Left)


async def test_an_idle_participant_keeps_its_connection_alive_with_pings(issuer: Issuer) -> None:
    main = await RoomServer("main", issuer).start()
    credential = issuer.credential("ana")
    main.assign(issuer.assignment())
    settings = ClientSettings(wire=Settings(ping_interval=0.05, idle_timeout=30))
    try:
        async with Participant(issuer.ticket(credential, [main.entry()]), settings=settings) as ana:
            heard = main.received
            await wait_for(lambda: main.received >= heard + 3 * 10)  # Pings: 10 bytes each
            assert ana.connected
    finally:
        await main.close()


async def test_leaving_while_rejoining_ends_the_session_at_once(issuer: Issuer) -> None:
    main = await RoomServer("main", issuer).start()
    credential = issuer.credential("ana")
    main.assign(issuer.assignment())
    participant = Participant(
        issuer.ticket(credential, [main.entry()]),
        settings=ClientSettings(rejoin_delay=0.01, rejoin_tries=1000, probe_timeout=1.0),
    )
    await participant.join()
    watcher = Watcher(participant)
    await main.close()
    await watcher.wait(lambda e: isinstance(e, Rejoining) and e.attempt >= 2)
    with pytest.raises(NotConnected):
        participant.raise_hand()
    left = await participant.leave()
    assert left.reason is ByeReason.NORMAL and not left.by_peer
    await watcher.stop()
    assert watcher.events[-1] == left
