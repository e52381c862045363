"""The event's recording state through the tree: announced, paused, resumed, ended.

A recorder (here ``di``, on child-b) says it records and every participant on
every server is told; a participant who is not a moderator cannot pause it and
gets a clear error; the moderator pauses and resumes it for everyone; when the
recorder goes, everyone is told the event is no longer recorded.
"""

from __future__ import annotations

from tests.live.live_support import Client, World
from townhall.wire import ErrorCode, RecordingChanged, RecordingState, SetRecording


def states(client: Client) -> list[RecordingState]:
    return [m.state for m in client.messages if isinstance(m, RecordingChanged)]


def test_everyone_is_told_and_only_a_moderator_pauses(world: World) -> None:
    world.di.send(SetRecording(state=RecordingState.RECORDING))
    world.net.pump()
    for client in world.everyone:
        assert states(client) == [RecordingState.RECORDING], client

    world.bo.send(SetRecording(state=RecordingState.PAUSED))
    world.net.pump()
    assert [(e.code, e.message) for e in world.bo.errors] == [
        (ErrorCode.NOT_ALLOWED, "only a moderator may pause or resume the recording")
    ]
    assert all(states(c) == [RecordingState.RECORDING] for c in world.everyone)

    world.ana.send(SetRecording(state=RecordingState.PAUSED))
    world.net.pump()
    world.ana.send(SetRecording(state=RecordingState.RECORDING))
    world.net.pump()
    expected = [RecordingState.RECORDING, RecordingState.PAUSED, RecordingState.RECORDING]
    assert all(states(c) == expected for c in world.everyone)
    floor = world.main.room.floor
    assert floor is not None and floor.recording is RecordingState.RECORDING

    world.net.hang_up(world.di)
    for client in (world.ana, world.bo, world.cy):
        assert states(client)[-1] is RecordingState.OFF


def test_only_the_recorder_stops_it_and_nobody_pauses_what_is_not_recorded(world: World) -> None:
    world.ana.send(SetRecording(state=RecordingState.PAUSED))
    world.net.pump()
    assert [e.code for e in world.ana.errors] == [ErrorCode.UNAVAILABLE]
    world.di.send(SetRecording(state=RecordingState.RECORDING))
    world.net.pump()
    world.cy.send(SetRecording(state=RecordingState.OFF))
    world.net.pump()
    assert [e.message for e in world.cy.errors] == ["only the recorder stops itself"]
    world.di.send(SetRecording(state=RecordingState.OFF))
    world.net.pump()
    assert states(world.bo) == [RecordingState.RECORDING, RecordingState.OFF]
