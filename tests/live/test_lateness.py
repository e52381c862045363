"""Audio that reaches a server too late is dropped at the door, for everyone, and counted.

``Lateness`` on its own (a stream's best case, bursts, clock drift, many
streams), then in the room of a two-level tree on the hand-stepped clock of
live_support: a speaker whose frames arrive on time is heard in full; the
same speaker after a stall, whose held-back frames arrive in one burst, is
heard only in the frames recent enough, and the server says how many it
dropped. Video is never dropped there.
"""

from __future__ import annotations

import pytest

from tests.live.live_support import World, audio_frames
from townhall.live.lateness import Lateness
from townhall.wire import Channel, Codec, MediaFrame, SetSpeakingMode, SpeakingMode

FRAME = 0.02  # seconds of audio in a frame


def test_a_steady_stream_is_never_late_whatever_the_clock_offset() -> None:
    lateness = Lateness()
    start_of_sender_clock = 123_456_789.0  # the sender's clock is not ours
    for n in range(500):
        late = lateness.late_by(7, int((start_of_sender_clock + n * FRAME) * 1e6), 1000 + n * FRAME)
        assert late == pytest.approx(0, abs=1e-6)


def test_frames_held_back_and_read_in_a_burst_are_late_by_how_long_they_waited() -> None:
    lateness = Lateness()
    for n in range(50):  # one second on time
        lateness.late_by(1, int(n * FRAME * 1e6), 10 + n * FRAME)
    # The next second's frames are all read at once, one second after the first was taken.
    read_at = 10 + 100 * FRAME
    lates = [lateness.late_by(1, int(n * FRAME * 1e6), read_at) for n in range(50, 100)]
    assert lates[0] == pytest.approx(1.0)
    assert lates[-1] == pytest.approx(FRAME)
    assert lates == sorted(lates, reverse=True)


def test_a_drifting_clock_is_followed_not_added_up() -> None:
    lateness = Lateness(window=5.0)
    worst = 0.0
    for n in range(50 * 120):  # two minutes of a sender's clock running 1 % slow
        now = 100 + n * FRAME
        worst = max(worst, lateness.late_by(3, int(n * FRAME * 0.99 * 1e6), now))
    assert worst < 0.15  # at most two windows' drift, never the 1.2 s two minutes make


def test_streams_are_apart_and_forgotten() -> None:
    lateness = Lateness()
    lateness.late_by(1, 0, 50.0)
    lateness.late_by(2, 0, 10.0)
    assert lateness.late_by(2, 0, 10.5) == pytest.approx(0.5)
    assert lateness.late_by(1, 0, 50.0) == 0  # its own best case, not stream 2's
    lateness.forget(2)
    assert lateness.late_by(2, 0, 99.0) == 0  # a new stream of that id starts afresh
    with pytest.raises(ValueError):
        Lateness(window=0)


def test_many_streams_are_bounded() -> None:
    lateness = Lateness()
    for stream_id in range(10_000):
        lateness.late_by(stream_id, 0, 1.0)
    assert len(lateness._streams) <= 4096


def send_audio(world: World, timestamp: float) -> None:
    stream = world.cy.my_stream()
    assert stream is not None
    world.cy.send(
        MediaFrame.build(
            Channel.AUDIO, stream_id=stream, seq=0, timestamp_us=int(timestamp * 1e6), payload=b"a"
        )
    )


def test_a_burst_after_a_stall_is_heard_only_where_it_is_recent(world: World) -> None:
    world.ana.send(SetSpeakingMode(mode=SpeakingMode.OPEN))
    world.cy.open_stream()
    world.cy.open_stream(Codec.VP8)
    world.net.pump()
    start = world.net.now
    for n in range(50):  # cy on child-b speaks in real time for a second
        send_audio(world, start + n * FRAME)
        world.net.pump()
        world.net.step(FRAME)
    heard = len(audio_frames(world.ana))
    assert heard == 50

    # cy's network stalls for 1 s: the frames of that second arrive at once, after it.
    world.net.step(1.0)
    for n in range(50, 100):
        send_audio(world, start + n * FRAME)
    world.net.pump()
    got = len(audio_frames(world.ana)) - heard
    # Read 1 s after the stall began: frames more than half of max_media_age (300 ms)
    # late are dropped at child-b, the last 150 ms of the burst pass.
    assert 6 <= got <= 9, got
    assert world.b.room.media_late == 50 - got
    assert world.main.room.media_late == 0  # dropped at the door, not again upstream
    assert len(audio_frames(world.di)) == len(audio_frames(world.ana))

    # Video of the same moment is relayed however late (a hole would spoil pictures).
    video = world.cy.my_stream(Codec.VP8)
    assert video is not None
    seen = len([f for f in world.ana.media if f.channel is Channel.VIDEO])
    world.cy.send(
        MediaFrame.build(
            Channel.VIDEO, stream_id=video, seq=0, timestamp_us=int(start * 1e6), payload=b"v"
        )
    )
    world.net.pump()
    assert len([f for f in world.ana.media if f.channel is Channel.VIDEO]) == seen + 1

    # And the stream goes on on time afterwards.
    now = world.net.now
    send_audio(world, start + (now - start))
    world.net.pump()
    assert len(audio_frames(world.ana)) - heard == got + 1
