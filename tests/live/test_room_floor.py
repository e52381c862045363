"""The floor through the tree: who may speak, hands, mutes, modes, removal."""

from __future__ import annotations

from tests.live.live_support import Client, World, audio_frames
from townhall.wire import (
    AuthFailed,
    AuthFailure,
    ByeReason,
    CloseStream,
    Codec,
    EndEvent,
    ErrorCode,
    GiveFloor,
    LowerHand,
    Mute,
    RaiseHand,
    Remove,
    SetSpeakingMode,
    SpeakingMode,
    TakeFloor,
)


def open_streams(world: World, *clients: Client) -> None:
    for client in clients:
        client.open_stream()
    world.net.pump()


def everyone_speaks(world: World) -> dict[str, int]:
    """Each participant sends one audio frame; how many frames each one got."""
    before = {c.label: len(audio_frames(c)) for c in world.everyone}
    for client in world.everyone:
        client.speak()
    world.net.pump()
    return {c.label: len(audio_frames(c)) - before[c.label] for c in world.everyone}


def senders_heard(world: World, listener: Client, since: int) -> set[str]:
    owners = {info.stream_id: info.owner for info in listener.streams.values()}
    return {owners[f.stream_id] for f in audio_frames(listener)[since:]}


def test_streams_are_announced_to_everyone(world: World) -> None:
    open_streams(world, *world.everyone)
    for client in world.everyone:
        assert sorted(info.owner for info in client.streams.values()) == ["ana", "bo", "cy", "di"]
        assert client.my_stream() is not None
    assert len(world.main.room.streams) == 4


def test_in_moderated_mode_only_the_floor_holders_media_passes(world: World) -> None:
    open_streams(world, *world.everyone)
    assert everyone_speaks(world) == {"ana": 0, "bo": 0, "cy": 0, "di": 0}

    world.ana.send(GiveFloor(name="cy"))
    world.net.pump()
    assert all(c.roster["cy"].floor for c in world.everyone)
    marks = {c.label: len(audio_frames(c)) for c in world.everyone}
    got = everyone_speaks(world)
    # cy's one frame reached the three others exactly once, and nobody else's passed
    assert got == {"ana": 1, "bo": 1, "cy": 0, "di": 1}
    for client in (world.ana, world.bo, world.di):
        assert senders_heard(world, client, marks[client.label]) == {"cy"}
    assert world.a.room.media_refused == 2  # bo's two, dropped at bo's own server


def test_the_moderator_takes_the_floor_and_the_holder_may_yield_it(world: World) -> None:
    world.ana.send(GiveFloor(name="bo"))
    world.net.pump()
    world.ana.send(TakeFloor())
    world.net.pump()
    assert world.cy.roster["ana"].floor and not world.cy.roster["bo"].floor
    world.ana.send(TakeFloor())  # the holder taking it again yields it
    world.net.pump()
    assert not any(m.floor for m in world.cy.roster.values())
    assert world.main.room.floor is not None and world.main.room.floor.holder is None


def test_only_a_moderator_gives_the_floor(world: World) -> None:
    world.bo.send(GiveFloor(name="bo"))
    world.cy.send(TakeFloor())
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.NOT_ALLOWED]
    assert [e.code for e in world.cy.errors] == [ErrorCode.NOT_ALLOWED]
    assert not any(m.floor for m in world.di.roster.values())
    world.ana.send(GiveFloor(name="nobody"))
    world.net.pump()
    assert [e.code for e in world.ana.errors] == [ErrorCode.UNKNOWN_MEMBER]


def test_open_mode_lets_everyone_unmuted_speak(world: World) -> None:
    open_streams(world, *world.everyone)
    world.bo.send(SetSpeakingMode(mode=SpeakingMode.OPEN))
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.NOT_ALLOWED]
    world.ana.send(SetSpeakingMode(mode=SpeakingMode.OPEN))
    world.net.pump()
    assert all(
        c.snapshot is not None and c.snapshot.mode is SpeakingMode.OPEN for c in world.everyone
    )
    assert everyone_speaks(world) == {"ana": 3, "bo": 3, "cy": 3, "di": 3}
    world.cy.send(TakeFloor())  # anyone may take the floor in open mode
    world.net.pump()
    assert world.ana.roster["cy"].floor


def test_lecture_mode_lets_moderators_and_presenters_speak_and_lowers_hands(world: World) -> None:
    pat = world.net.participant(world.a, "pat")
    open_streams(world, *world.everyone, pat)
    world.bo.send(RaiseHand())
    world.net.pump()
    world.ana.send(SetSpeakingMode(mode=SpeakingMode.LECTURE))
    world.net.pump()
    assert not world.cy.roster["bo"].hand_raised
    world.cy.send(RaiseHand())
    world.net.pump()
    assert [e.code for e in world.cy.errors] == [ErrorCode.NOT_ALLOWED]
    marks = len(audio_frames(world.di))
    got = everyone_speaks(world)
    pat.speak()
    world.net.pump()
    assert got["di"] == 1 and senders_heard(world, world.di, marks) == {"ana", "pat"}


def test_hands_queue_in_the_order_raised_and_the_floor_takes_one_off(world: World) -> None:
    world.cy.send(RaiseHand())
    world.net.pump()
    world.bo.send(RaiseHand())
    world.di.send(RaiseHand())
    world.net.pump()
    floor = world.main.room.floor
    assert floor is not None
    assert floor.queue[0] == "cy" and sorted(floor.queue) == ["bo", "cy", "di"]
    world.cy.send(RaiseHand())  # again: no duplicate
    world.net.pump()
    assert floor.queue.count("cy") == 1
    assert all(c.roster["bo"].hand_raised for c in world.everyone)

    world.bo.send(LowerHand())
    world.net.pump()
    assert "bo" not in floor.queue and not world.ana.roster["bo"].hand_raised
    world.di.send(LowerHand(name="cy"))  # not a moderator: only her own
    world.net.pump()
    assert [e.code for e in world.di.errors] == [ErrorCode.NOT_ALLOWED]
    world.ana.send(GiveFloor(name=floor.queue[0]))
    world.net.pump()
    assert floor.holder == "cy" and floor.queue == ("di",)
    assert world.bo.roster["cy"].floor and not world.bo.roster["cy"].hand_raised
    world.ana.send(LowerHand(name="di"))
    world.net.pump()
    assert floor.queue == ()


def test_a_muted_floor_holder_is_not_heard(world: World) -> None:
    open_streams(world, *world.everyone)
    world.ana.send(GiveFloor(name="di"))
    world.ana.send(Mute(name="di"))
    world.net.pump()
    assert all(c.roster["di"].muted for c in world.everyone)
    assert everyone_speaks(world) == {"ana": 0, "bo": 0, "cy": 0, "di": 0}
    world.bo.send(Mute(name="di", muted=False))
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.NOT_ALLOWED]
    world.ana.send(Mute(name="di", muted=False))
    world.net.pump()
    assert everyone_speaks(world) == {"ana": 1, "bo": 1, "cy": 1, "di": 0}


def test_media_on_someone_elses_stream_or_a_closed_one_is_dropped(world: World) -> None:
    open_streams(world, world.cy)
    world.ana.send(SetSpeakingMode(mode=SpeakingMode.OPEN))
    world.net.pump()
    cy_stream = world.cy.my_stream()
    assert cy_stream is not None
    world.di.streams[cy_stream] = world.di.streams[cy_stream].__class__(
        stream_id=cy_stream, owner="di", codec=Codec.OPUS
    )  # di pretends cy's stream is hers
    world.di.speak()
    world.net.pump()
    assert audio_frames(world.ana) == [] and world.b.room.media_refused == 1
    world.cy.send(CloseStream(stream_id=cy_stream))
    world.net.pump()
    assert all(cy_stream not in c.streams for c in world.everyone)


def test_removed_participant_is_closed_and_cannot_come_back_with_the_same_ticket(
    world: World,
) -> None:
    world.bo.send(Remove(name="cy"))
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.NOT_ALLOWED]
    world.ana.send(GiveFloor(name="cy"))
    world.ana.send(Remove(name="cy"))
    world.net.pump()
    assert world.cy.closed is not None and world.cy.closed.reason is ByeReason.REMOVED
    for client in (world.ana, world.bo, world.di):
        assert "cy" not in client.roster
    floor = world.main.room.floor
    assert floor is not None and floor.holder is None and "cy" not in floor.seats

    for server in (world.b, world.a, world.main):  # the ban reached every server
        again = world.net.join(server, type(world.cy)("cy-again", world.cy.ticket, world.net.now))
        assert isinstance(again.auth, AuthFailed), server.name
        assert again.auth.reason is AuthFailure.NOT_ALLOWED
    assert "cy" not in world.ana.roster


def test_a_participant_who_leaves_gives_up_floor_hand_and_streams(world: World) -> None:
    open_streams(world, world.bo)
    world.di.send(RaiseHand())
    world.ana.send(GiveFloor(name="bo"))
    world.net.pump()
    world.bo.leave()
    world.net.hang_up(world.di)
    floor = world.main.room.floor
    assert floor is not None
    assert floor.holder is None and floor.queue == () and sorted(floor.seats) == ["ana", "cy"]
    assert sorted(world.cy.roster) == ["ana", "cy"] and world.cy.streams == {}


def test_a_remove_is_kept_on_the_main_server_for_the_controller_and_a_refused_one_is_not(
    world: World,
) -> None:
    world.bo.send(Remove(name="cy"))
    world.net.pump()
    assert world.main.room.removed == ()
    world.ana.send(Remove(name="cy"))
    world.net.pump()
    floor = world.main.room.floor
    assert floor is not None
    (removed,) = world.main.room.removed
    assert (removed.name, removed.by_name) == ("cy", "ana")
    assert removed.by_credential_id == floor.seats["ana"].credential_id
    assert floor.banned == {removed.credential_id}
    # Children relay the ban; only the main server, which decided it, reports it.
    assert world.a.room.removed == () and world.b.room.removed == ()


def test_a_moderator_ends_the_event_for_everyone_on_every_server(world: World) -> None:
    world.bo.send(EndEvent())
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.NOT_ALLOWED]
    assert all(client.closed is None for client in world.everyone)

    world.ana.send(EndEvent())
    world.net.pump()
    for client in world.everyone:
        assert client.closed is not None and client.closed.reason is ByeReason.EVENT_ENDED
    late = world.net.join(world.b, type(world.bo)("late", world.bo.ticket, world.net.now))
    assert isinstance(late.auth, AuthFailed) and late.auth.reason is AuthFailure.EVENT_NOT_LIVE
