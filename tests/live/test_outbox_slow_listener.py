"""Bounded send queues: a slow listener loses media, never chat, and holds up nobody."""

from __future__ import annotations

from tests.live.live_support import Center, Network, audio_frames, tree
from townhall.live import Outbox
from townhall.wire import (
    ByeReason,
    Channel,
    Codec,
    GiveFloor,
    MediaFrame,
    SetSpeakingMode,
    SpeakingMode,
)


def frame(
    seq: int,
    *,
    channel: Channel = Channel.AUDIO,
    size: int = 100,
    keyframe: bool = False,
    stream_id: int = 1,
) -> MediaFrame:
    return MediaFrame.build(
        channel,
        stream_id=stream_id,
        seq=seq,
        timestamp_us=seq,
        payload=b"m" * size,
        keyframe=keyframe,
    )


def test_drain_gives_everything_queued_as_one_write() -> None:
    outbox = Outbox(media_limit=10_000, limit=20_000)
    assert outbox.push("c", b"control")
    assert outbox.push_media("c", frame(1), 0.0)
    assert outbox.push("c", b"chat")
    assert outbox.ready() == ["c"]
    data = outbox.drain("c", 0.0)
    assert data == b"control" + frame(1).data + b"chat"
    assert outbox.drain("c", 0.0) == b"" and outbox.ready() == [] and outbox.pending("c") == 0


def test_a_frame_fanned_out_reaches_every_listener_but_the_full_one_and_drops_the_stale() -> None:
    """``push_media_to``, the fan-out's one loop, keeps ``push_media``'s rules per queue."""
    outbox = Outbox(media_limit=1_000, limit=5_000, max_media_age=0.3)
    outbox.push_media("drained", frame(0), 10.0)
    outbox.drain("drained", 10.0)
    while outbox.push_media("full", frame(0), 10.4):  # full, but not stale at 10.5
        pass
    full_before, dropped_before = outbox.pending("full"), outbox.stats("full").dropped_frames
    outbox.push_media("behind", frame(1), 10.0)
    outbox.ready()  # a pass ends: "full" and "behind" were not written (paused)
    outbox.push_media_to(["drained", "full", "behind", "new"], frame(2), 10.5)
    assert outbox.drain("drained", 10.5) == frame(2).data
    assert outbox.drain("new", 10.5) == frame(2).data
    assert outbox.drain("behind", 10.5) == frame(2).data  # frame 1, 0.5 s old, is gone
    assert outbox.stats("behind").dropped_late_frames == 1
    assert outbox.stats("full").dropped_frames == dropped_before + 1  # frame 2, here only
    assert len(outbox.drain("full", 10.5)) == full_before
    video = frame(3, channel=Channel.VIDEO, size=900, keyframe=True)
    outbox.push_media("full", frame(4, size=800), 10.6)  # the 900-byte key frame cannot fit
    outbox.push_media_to(["full", "drained"], video, 10.6)
    assert outbox.take_keyframe_holds() == {1}  # "full" asks for the next key frame
    assert outbox.drain("drained", 10.6) == video.data


def test_media_over_the_media_limit_is_dropped_and_counted_but_control_is_kept() -> None:
    outbox = Outbox(media_limit=1_000, limit=5_000)
    kept = sum(outbox.push_media("c", frame(n), 0.0) for n in range(20))
    assert kept == 1_000 // len(frame(0).data)
    assert outbox.stats("c").dropped_frames == 20 - kept
    assert outbox.push("c", b"x" * 2_000)
    assert outbox.pending("c") <= 5_000


def test_after_a_dropped_video_frame_the_stream_waits_for_a_keyframe() -> None:
    outbox = Outbox(media_limit=1_000, limit=5_000)
    assert outbox.push_media("c", frame(1, channel=Channel.VIDEO, size=800, keyframe=True), 0.0)
    assert not outbox.push_media("c", frame(2, channel=Channel.VIDEO, size=800), 0.0)  # too big now
    outbox.drain("c", 0.0)
    assert not outbox.push_media("c", frame(3, channel=Channel.VIDEO, size=10), 0.0)  # a delta: useless
    assert outbox.push_media("c", frame(4, channel=Channel.AUDIO, stream_id=2, size=10), 0.0)
    assert outbox.push_media("c", frame(5, channel=Channel.VIDEO, size=10, keyframe=True), 0.0)
    assert outbox.push_media("c", frame(6, channel=Channel.VIDEO, size=10), 0.0)


def test_control_overflow_first_throws_queued_media_away_then_says_too_slow() -> None:
    outbox = Outbox(media_limit=3_000, limit=4_000)
    for n in range(20):
        outbox.push_media("c", frame(n), 0.0)
    assert outbox.pending("c") > 2_000
    assert outbox.push("c", b"y" * 3_500)  # fits once the media is gone
    assert outbox.pending("c") == 3_500
    assert not outbox.push("c", b"z" * 1_000)  # control alone over the limit
    assert outbox.pending("c") == 3_500


def test_queues_are_per_connection() -> None:
    outbox = Outbox(media_limit=1_000, limit=2_000)
    for n in range(50):
        outbox.push_media("slow", frame(n), 0.0)
        outbox.push_media("fast", frame(n), 0.0)
        outbox.drain("fast", 0.0)
    assert outbox.stats("fast").dropped_frames == 0
    assert outbox.stats("slow").dropped_frames > 0
    outbox.discard("slow")
    assert outbox.pending("slow") == 0


def test_a_slow_listener_loses_media_keeps_chat_and_holds_up_nobody(issuer: Center) -> None:
    media_limit, limit = 4_096, 64 * 1024
    net, main, a, b = tree(issuer, outbox_limits=(media_limit, limit))
    ana = net.participant(main, "ana")
    bo = net.participant(a, "bo")
    cy = net.participant(b, "cy")
    di = net.participant(b, "di")
    ana.open_stream()
    ana.send(GiveFloor(name="ana"))
    net.pump()
    net.pipe_of(di).paused = True  # di's network stalls: child-b's queue for her fills

    for n in range(200):
        ana.speak(size=200)
        if n % 20 == 0:
            bo.chat(f"chat {n}")
        net.pump()

    assert len(audio_frames(bo)) == len(audio_frames(cy)) == 200  # the others got everything
    stats = b.dispatcher.outbox.stats(net.pipe_of(di).conn)
    assert stats.dropped_frames > 150
    assert stats.peak_bytes <= limit and b.dispatcher.outbox.pending(net.pipe_of(di).conn) <= limit

    net.pipe_of(di).paused = False
    net.pump()
    assert [t for _, t in di.public_chat()] == [f"chat {n}" for n in range(0, 200, 20)]
    assert 0 < len(audio_frames(di)) < 50
    assert di.is_open


def test_a_listener_too_slow_even_for_chat_is_closed_and_the_rest_go_on(issuer: Center) -> None:
    net, main, a, b = tree(issuer, outbox_limits=(1_024, 16 * 1024))
    ana = net.participant(main, "ana")
    bo = net.participant(a, "bo")
    di = net.participant(b, "di")
    net.pipe_of(di).paused = True
    for n in range(20):
        ana.chat(f"{n:04d} " + "x" * 1_000)
        net.pump()
    # closed without a word (its queue was thrown away), and forgotten everywhere
    assert di.closed is not None and di.closed.reason is ByeReason.CONNECTION_LOST
    assert all(pipe.client is not di for pipe in net.pipes)
    assert "di" not in b.room.local_members and "di" not in ana.roster
    assert len(bo.chats) == len(ana.chats) == 20 and bo.is_open


def test_a_relayed_frame_is_the_very_bytes_its_sender_built(issuer: Center) -> None:
    net = Network(issuer)
    main = net.add_server("main")
    from townhall.live import ServerRole

    net.assign(main, issuer.assignment(ServerRole.MAIN))
    clients = [net.participant(main, name) for name in ("ana", "bo", "cy", "di")]
    clients[0].send(SetSpeakingMode(mode=SpeakingMode.OPEN))
    clients[1].open_stream(Codec.OPUS)
    net.pump()
    clients[1].speak()
    net.pump()
    received = [audio_frames(c) for c in clients]
    assert [len(r) for r in received] == [1, 0, 1, 1]
    assert received[0][0].data == received[2][0].data == received[3][0].data


def test_media_queued_longer_than_the_age_limit_is_dropped_and_counted() -> None:
    outbox = Outbox(max_media_age=0.3)
    outbox.push_media("c", frame(1), 10.0)
    outbox.push_media("c", frame(2), 10.1)
    assert outbox.ready() == ["c"]  # a pass ends; "c" is paused, so it is not drained
    assert outbox.push_media("c", frame(3), 10.35)  # frame 1 is now 0.35 s old: dropped
    outbox.ready()
    data = outbox.drain("c", 10.45)  # frame 2 is 0.35 s old too
    assert data == frame(3).data
    stats = outbox.stats("c")
    assert stats.dropped_late_frames == stats.dropped_frames == 2
    assert stats.dropped_bytes == len(frame(1).data) + len(frame(2).data)
    assert outbox.pending("c") == stats.queued_bytes == 0


def test_chat_and_control_queued_longer_than_the_age_limit_are_still_delivered() -> None:
    outbox = Outbox(max_media_age=0.3)
    outbox.push_media("c", frame(1), 10.0)
    assert outbox.push("c", b"chat")
    outbox.push_media("c", frame(2), 10.0)
    assert outbox.push("c", b"control")
    outbox.ready()
    outbox.push_media("c", frame(3), 12.0)
    outbox.ready()
    assert outbox.drain("c", 12.0) == b"chat" + b"control" + frame(3).data
    assert outbox.stats("c").dropped_late_frames == 2
    assert outbox.drain("c", 20.0) == b""


def test_a_slow_pass_of_the_server_itself_drops_nothing() -> None:
    """Frames queued in the pass that is ending are written however long the pass took:
    the listener missed no write, so it is not behind (the server is)."""
    outbox = Outbox(max_media_age=0.3)
    outbox.push_media("c", frame(1), 10.0)
    outbox.push_media("c", frame(2), 11.0)
    assert outbox.ready() == ["c"]
    assert outbox.drain("c", 11.5) == frame(1).data + frame(2).data
    assert outbox.stats("c").dropped_frames == 0


def test_late_video_waits_for_its_next_keyframe_and_asks_for_one() -> None:
    outbox = Outbox(max_media_age=0.3)
    outbox.push_media("c", frame(1, channel=Channel.VIDEO, keyframe=True), 10.0)
    outbox.ready()
    outbox.ready()
    assert outbox.drain("c", 11.0) == b""
    assert outbox.take_keyframe_holds() == {1}
    assert not outbox.push_media("c", frame(2, channel=Channel.VIDEO), 11.0)  # a delta: useless
    assert outbox.push_media("c", frame(3, channel=Channel.VIDEO, keyframe=True), 11.0)


def test_media_within_the_age_limit_is_kept() -> None:
    outbox = Outbox(max_media_age=0.3)
    for n in range(10):
        assert outbox.push_media("c", frame(n), 10.0 + n * 0.02)
        outbox.ready()
    assert len(outbox.drain("c", 10.3)) == 10 * len(frame(0).data)
    assert outbox.stats("c").dropped_frames == 0


def test_the_totals_count_deliveries_bytes_and_drops_of_closed_connections_too() -> None:
    outbox = Outbox(media_limit=1_000, limit=5_000, max_media_age=0.3)
    size = len(frame(0).data)
    for n in range(3):
        assert outbox.push_media("fast", frame(n), 0.0)
    outbox.ready()
    assert outbox.drain("fast", 0.0) == b"".join(frame(n).data for n in range(3))
    kept = sum(outbox.push_media("slow", frame(n), 0.0) for n in range(20))
    assert outbox.oldest_media_age(0.25) == 0.25
    outbox.discard("slow")  # it closed: its counts stay in the totals
    totals = outbox.totals()
    assert totals.delivered_frames == 3  # written; the slow one's were queued, never written
    assert totals.sent_bytes == 3 * size
    assert totals.dropped_frames == 20 - kept
    assert totals.dropped_bytes == (20 - kept) * size
    assert totals.queued_bytes == 0
    assert outbox.oldest_media_age(1.0) == 0.0  # nothing queued any more


def test_each_write_of_media_counts_how_long_its_oldest_frame_waited() -> None:
    outbox = Outbox(media_limit=10_000, limit=20_000, max_media_age=0.3)
    assert outbox.push_media("c", frame(1), 1.0)
    assert outbox.push_media("c", frame(2), 1.01)
    outbox.ready()
    outbox.drain("c", 1.03)  # frame 1 waited 30 ms
    assert outbox.push("c", b"chat only")
    outbox.ready()
    outbox.drain("c", 2.0)  # no media in this write: no delay to count
    assert outbox.push_media("c", frame(3), 3.0)
    outbox.ready()
    outbox.drain("c", 3.01)
    totals = outbox.totals()
    assert totals.media_writes == 2
    assert abs(totals.media_wait_seconds - 0.04) < 1e-9


def test_media_dropped_for_its_age_is_counted_as_late() -> None:
    outbox = Outbox(media_limit=10_000, limit=20_000, max_media_age=0.3)
    assert outbox.push_media("c", frame(1), 0.0)
    outbox.ready()  # offered in this pass, and not drained (its connection paused)
    outbox.ready()  # the next pass: it missed a write, so now it can be late
    assert outbox.oldest_media_age(0.5) == 0.5
    assert outbox.drain("c", 0.5) == b""
    totals = outbox.totals()
    assert (totals.dropped_frames, totals.dropped_late_frames, totals.sent_bytes) == (1, 1, 0)
