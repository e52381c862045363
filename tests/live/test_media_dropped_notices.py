"""A participant whose media its server dropped is told so (``MediaDropped``), at most once a second.

Sans-IO, through a real tree of rooms (``live_support``), on a clock the test
moves: the counts told add up to what the ``Outbox`` dropped for that
participant and name its streams; a participant that lost nothing is never
told; server links never are (each server tells its own participants); and a
viewer's dropped video makes its server ask the owner for one key frame per
episode, no more.
"""

from __future__ import annotations

import itertools

from tests.live.live_support import LINK_SECRETS, Center, Client, Network, Server, tree
from tests.live.test_outbox_slow_listener import frame
from townhall.live import ServerRole
from townhall.live.dispatch import NOTICE_INTERVAL, media_dropped
from townhall.live.outbox import Drops, Outbox
from townhall.wire import (
    Channel,
    Codec,
    GiveFloor,
    MediaDropped,
    RequestKeyFrame,
    SetSpeakingMode,
    SpeakingMode,
    StreamDrops,
)
from townhall.wire.messages import MAX_STREAMS


def notices(client: Client) -> list[MediaDropped]:
    return [m for m in client.messages if isinstance(m, MediaDropped)]


def told(client: Client) -> dict[int, int]:
    """Frames per stream, over all the notices ``client`` got."""
    total: dict[int, int] = {}
    for notice in notices(client):
        for stream in notice.streams:
            total[stream.stream_id] = total.get(stream.stream_id, 0) + stream.frames
    return total


def dropped_for(server: Server, net: Network, client: Client) -> int:
    return server.dispatcher.outbox.stats(net.pipe_of(client).conn).dropped_frames


def speaker(net: Network, main: Server, *codecs: Codec) -> Client:
    ana = net.participant(main, "ana")
    ana.send(GiveFloor(name="ana"))
    ana.send(SetSpeakingMode(mode=SpeakingMode.MODERATED))
    for codec in codecs:
        ana.open_stream(codec)
    net.pump()
    return ana


def test_a_listener_that_keeps_losing_audio_is_told_once_a_second_with_every_frame_counted(
    issuer: Center,
) -> None:
    # Each pass, two 200-byte frames reach a listener's queue of 300: the second is dropped.
    net, main, a, b = tree(issuer, outbox_limits=(300, 256 * 1024))
    ana = speaker(net, main, Codec.OPUS)
    bo = net.participant(a, "bo")
    cy = net.participant(b, "cy")
    stream = ana.my_stream(Codec.OPUS)
    assert stream is not None

    heard: list[float] = []  # when bo got each notice
    for _ in range(30):
        ana.speak(Codec.OPUS, size=200)
        ana.speak(Codec.OPUS, size=200)
        net.step(0.1)
        heard += [net.now] * (len(notices(bo)) - len(heard))
    net.step(NOTICE_INTERVAL)  # what was dropped since the last notice is told at a wakeup
    heard += [net.now] * (len(notices(bo)) - len(heard))

    for listener, server in ((bo, a), (cy, b)):
        assert dropped_for(server, net, listener) == 30
        assert sum(n.audio_frames for n in notices(listener)) == 30
        assert sum(n.video_frames for n in notices(listener)) == 0
        assert told(listener) == {stream: 30}
        assert len(audio_of(listener)) == 30  # the other half arrived
    assert 3 <= len(heard) <= 4  # 3 s of drops: not one notice per frame
    assert all(
        later - earlier >= NOTICE_INTERVAL - 1e-9 for earlier, later in itertools.pairwise(heard)
    )
    assert notices(ana) == []  # nothing of hers was dropped


def audio_of(client: Client) -> list[int]:
    return [f.seq for f in client.media if f.channel is Channel.AUDIO]


def test_a_listener_that_loses_nothing_is_never_told(issuer: Center) -> None:
    net, main, a, _ = tree(issuer)
    ana = speaker(net, main, Codec.OPUS)
    bo = net.participant(a, "bo")
    for _ in range(20):
        ana.speak(Codec.OPUS, size=200)
        net.step(0.1)
    net.step(2 * NOTICE_INTERVAL)
    assert len(audio_of(bo)) == 20
    assert notices(bo) == [] and notices(ana) == []


def test_what_a_parent_drops_on_a_link_is_told_to_no_one(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main")
    # Before any link connects: main's links get a media bound of 300 bytes.
    main.dispatcher.outbox = Outbox(link_media_limit=300, link_limit=256 * 1024)
    a = net.add_server("child-a")
    net.assign(main, issuer.assignment(ServerRole.MAIN, children=("child-a",)))
    net.assign(
        a,
        issuer.assignment(
            ServerRole.CHILD, parent=main.address, link_secret=LINK_SECRETS["child-a"]
        ),
    )
    ana = speaker(net, main, Codec.OPUS)
    bo = net.participant(a, "bo")
    for _ in range(20):
        ana.speak(Codec.OPUS, size=200)
        ana.speak(Codec.OPUS, size=200)  # dropped on the link: over its 300 bytes
        net.step(0.1)
    net.step(2 * NOTICE_INTERVAL)
    (link,) = net.link_pipes(a)
    assert main.dispatcher.outbox.stats(link.conn).dropped_frames == 20
    assert not main.dispatcher.outbox.has_drops()  # taken, and told to no one
    assert len(audio_of(bo)) == 20 and notices(bo) == []  # child-a itself dropped nothing
    bo.chat("the link is fine")
    net.pump()
    assert ("bo", "the link is fine") in ana.public_chat()


def requests_seen(client: Client) -> list[int]:
    return [m.stream_id for m in client.messages if isinstance(m, RequestKeyFrame)]


def test_a_stalled_viewer_is_told_its_lost_video_and_the_owner_asked_once_per_episode(
    issuer: Center,
) -> None:
    net, main, _, b = tree(issuer, outbox_limits=(8_192, 256 * 1024))
    ana = speaker(net, main, Codec.VP8, Codec.OPUS)
    cy = net.participant(b, "cy")
    di = net.participant(b, "di")
    video, audio = ana.my_stream(Codec.VP8), ana.my_stream(Codec.OPUS)
    assert video is not None and audio is not None
    ana.speak(Codec.VP8, size=1_000, keyframe=True)
    net.pump()

    for episode in (1, 2):
        net.pipe_of(di).paused = True  # di's network stalls: child-b drops her video
        for n in range(30):
            ana.speak(Codec.VP8, size=1_000)
            ana.speak(Codec.OPUS, size=100)
            if n == 10:
                cy.chat(f"still chatting {episode}")
            net.pump()
        net.pipe_of(di).paused = False
        net.step(NOTICE_INTERVAL)
        assert requests_seen(ana) == [video] * episode  # one request per episode
        ana.speak(Codec.VP8, size=1_000, keyframe=True)  # the owner answers
        net.step(NOTICE_INTERVAL)

    dropped = dropped_for(b, net, di)
    assert dropped > 0
    assert sum(n.audio_frames + n.video_frames for n in notices(di)) == dropped
    sent_video = 1 + 2 * (30 + 1)
    got_video = len([f for f in di.media if f.channel is Channel.VIDEO])
    assert sum(n.video_frames for n in notices(di)) == sent_video - got_video
    assert sum(n.audio_frames for n in notices(di)) == 60 - len(audio_of(di))
    assert set(told(di)) <= {video, audio} and told(di)[video] == sent_video - got_video
    assert ("cy", "still chatting 2") in di.public_chat()
    assert notices(cy) == [] and di.is_open


def test_a_notice_names_the_streams_with_most_drops_and_counts_them_all() -> None:
    drops = Drops(audio_frames=100, video_frames=5)
    drops.streams = {n: 1 for n in range(1, 101)} | {500: 5}  # 101 streams
    notice = media_dropped(drops)
    assert (notice.audio_frames, notice.video_frames) == (100, 5)
    assert len(notice.streams) == MAX_STREAMS
    assert notice.streams[0] == StreamDrops(stream_id=500, frames=5)


def test_the_outbox_counts_each_listeners_drops_by_stream_until_they_are_taken() -> None:
    outbox = Outbox(media_limit=1_000, limit=100_000, max_media_age=0.3)
    outbox.push_media("c", frame(1, stream_id=1), 10.0)
    outbox.push_media("c", frame(2, channel=Channel.VIDEO, stream_id=2, keyframe=True), 10.0)
    assert outbox.push("c", b"chat")
    outbox.ready()
    outbox.ready()  # c missed a write: what it has is late by 11.0
    assert outbox.drain("c", 11.0) == b"chat"  # the age limit drops media, never chat
    big = frame(3, stream_id=1, size=2_000)
    assert not outbox.push_media("c", big, 11.0)  # over the byte bound
    assert not outbox.push_media("fast", big, 11.0)
    assert outbox.dropping() == ["c", "fast"]
    drops = outbox.take_drops("c")
    assert drops == Drops(audio_frames=2, video_frames=1, streams={1: 2, 2: 1})
    assert outbox.stats("c").dropped_frames == 3 and outbox.stats("c").dropped_late_frames == 2
    assert outbox.take_drops("c") is None and outbox.dropping() == ["fast"]
    outbox.discard("fast")
    assert outbox.dropping() == []
