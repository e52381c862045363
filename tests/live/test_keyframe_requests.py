"""Key frame requests: a viewer (or a server that dropped video) asks, the owner is told once.

Sans-IO, through a real tree of rooms (``live_support``): a ``RequestKeyFrame``
travels Up to the main server and Down the owner's branch to the owner, at
most one per stream per ``keyframe_interval``; a server that drops a slow
viewer's video holds that stream for it until the next key frame and asks
for one itself, while audio and chat keep flowing.
"""

from __future__ import annotations

from tests.live.live_support import Center, Client, World, audio_frames, tree
from townhall.wire import (
    Channel,
    Codec,
    ErrorCode,
    GiveFloor,
    RequestKeyFrame,
    SetSpeakingMode,
    SpeakingMode,
)


def requests_seen(client: Client) -> list[int]:
    return [m.stream_id for m in client.messages if isinstance(m, RequestKeyFrame)]


def video_stream(world: World, owner: Client) -> int:
    owner.open_stream(Codec.VP8)
    world.net.pump()
    stream = owner.my_stream(Codec.VP8)
    assert stream is not None
    assert all(stream in client.streams for client in world.everyone)
    return stream


def test_a_viewers_request_reaches_the_owner_once_per_interval(world: World) -> None:
    stream = video_stream(world, world.ana)  # the owner is on the main server
    world.bo.send(RequestKeyFrame(stream_id=stream))  # a viewer on child-a
    world.net.pump()
    assert requests_seen(world.ana) == [stream]

    # more viewers ask within the interval: the key frame already asked for answers them
    world.bo.send(RequestKeyFrame(stream_id=stream))
    world.cy.send(RequestKeyFrame(stream_id=stream))
    world.net.step(0.1)
    assert requests_seen(world.ana) == [stream]

    world.net.step(0.4)  # past the interval on child-b too (it passed cy's on at 0.1)
    world.di.send(RequestKeyFrame(stream_id=stream))
    world.net.pump()
    assert requests_seen(world.ana) == [stream, stream]
    assert not any(requests_seen(c) for c in (world.bo, world.cy, world.di))


def test_the_request_goes_up_and_down_the_owners_branch(world: World) -> None:
    stream = video_stream(world, world.bo)  # the owner is on child-a
    world.cy.send(RequestKeyFrame(stream_id=stream))  # the viewer on child-b
    world.net.pump()
    assert requests_seen(world.bo) == [stream]
    assert not any(requests_seen(c) for c in (world.ana, world.cy, world.di))

    world.net.step(1.0)
    world.ana.send(RequestKeyFrame(stream_id=stream))  # a viewer on the main server
    world.net.pump()
    assert requests_seen(world.bo) == [stream, stream]


def test_a_request_for_no_video_stream_gets_unknown_stream(world: World) -> None:
    world.ana.open_stream(Codec.OPUS)
    world.net.pump()
    audio = world.ana.my_stream(Codec.OPUS)
    assert audio is not None
    for stream_id in (audio, 999):
        world.bo.send(RequestKeyFrame(stream_id=stream_id))
    world.net.pump()
    assert [e.code for e in world.bo.errors] == [ErrorCode.UNKNOWN_STREAM] * 2
    assert requests_seen(world.ana) == [] and world.bo.is_open


def test_a_slow_viewer_waits_for_a_key_frame_which_its_server_asks_for(issuer: Center) -> None:
    net, main, a, b = tree(issuer, outbox_limits=(8_192, 256 * 1024))
    ana = net.participant(main, "ana")
    bo = net.participant(a, "bo")
    cy = net.participant(b, "cy")
    di = net.participant(b, "di")
    ana.send(GiveFloor(name="ana"))
    ana.send(SetSpeakingMode(mode=SpeakingMode.MODERATED))
    ana.open_stream(Codec.VP8)
    ana.open_stream(Codec.OPUS)
    net.pump()
    ana.speak(Codec.VP8, size=1_000, keyframe=True)
    net.pump()

    net.pipe_of(di).paused = True  # di's network stalls: child-b must drop her video
    for n in range(30):
        ana.speak(Codec.VP8, size=1_000)
        ana.speak(Codec.OPUS, size=100)
        if n == 10:
            cy.chat("still chatting")
        net.pump()
    video = ana.my_stream(Codec.VP8)
    assert requests_seen(ana) == [video]  # child-b asked, once, through the main server
    assert b.dispatcher.outbox.stats(net.pipe_of(di).conn).dropped_frames > 0

    net.pipe_of(di).paused = False
    net.pump()
    seen = len([f for f in di.media if f.channel is Channel.VIDEO])
    for _ in range(5):  # deltas that depend on frames di never got: held back from her
        ana.speak(Codec.VP8, size=1_000)
        ana.speak(Codec.OPUS, size=100)
        net.pump()
    videos = [f for f in di.media if f.channel is Channel.VIDEO]
    assert len(videos) == seen
    ana.speak(Codec.VP8, size=1_000, keyframe=True)  # the owner answers with a key frame
    ana.speak(Codec.VP8, size=1_000)
    net.pump()
    videos = [f for f in di.media if f.channel is Channel.VIDEO]
    assert [f.keyframe for f in videos[seen:]] == [True, False]

    # the others got every frame; di's audio and chat kept flowing
    assert len([f for f in bo.media if f.channel is Channel.VIDEO]) == 1 + 30 + 5 + 2
    assert len(audio_frames(di)) > 5
    assert ("cy", "still chatting") in di.public_chat()
    assert di.is_open
