"""A real ``LiveServer`` over TLS tells a participant that stopped reading what media it lost.

The reader's socket buffers are small (its ``SO_RCVBUF``, the server's
``participant_send_buffer``), so its backlog soon waits in the server's
queue, where media is dropped and chat and control are not. Once it reads
again it gets every chat and control message in order, the media that was
not dropped, and ``MediaDropped`` notices that account for the rest.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import Pki, WireClient, running, speaker_and_small_reader
from townhall.wire import ChatPosted, Codec, MediaDropped, StreamOpened


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def notices(client: WireClient) -> list[MediaDropped]:
    return [m for m in client.messages if isinstance(m, MediaDropped)]


def dropped(client: WireClient) -> int:
    return sum(n.audio_frames + n.video_frames for n in notices(client))


async def test_a_reader_that_stalls_loses_media_is_told_how_much_and_misses_no_chat(
    pki: Pki, issuer: Center
) -> None:
    limits = {"media_limit": 64 * 1024, "limit": 8 * 1024 * 1024}
    async with running(
        pki, "main", outbox_limits=limits, participant_send_buffer=32 * 1024
    ) as main:
        ana, bo, cy, stream = await speaker_and_small_reader(main, pki, issuer)

        cy.pause_reading()
        sent = 0
        for _ in range(2000):  # until cy's buffers and then its queue overflow
            ana.speak(10, size=4000)
            sent += 10
            await bo.wait_for(lambda n=sent: len(bo.media) == n, f"{sent} frames at bo")  # type: ignore[misc]
            if main.counters().dropped_frames:
                break
        assert main.counters().dropped_frames > 0
        ana.chat("after the flood")
        ana.open_stream(Codec.VP8)  # control: a StreamOpened for everyone
        ana.chat("a camera too")
        await bo.wait_for(lambda: len(bo.chats) == 2, "both messages at bo")
        bo.chat("heard it all")
        await bo.wait_for(lambda: len(bo.chats) == 3, "bo's own message")
        assert notices(cy) == []  # nothing reaches a reader that does not read

        cy.resume_reading()
        await cy.wait_for(
            lambda: len(cy.chats) == 3 and len(cy.media_from(stream)) + dropped(cy) == sent,
            "every frame, received or told dropped",
        )
        in_order = [
            m.text if isinstance(m, ChatPosted) else "camera"
            for m in cy.messages
            if isinstance(m, ChatPosted)
            or (isinstance(m, StreamOpened) and m.stream.codec is Codec.VP8)
        ]
        assert in_order == ["after the flood", "camera", "a camera too", "heard it all"]
        got = cy.media_from(stream)
        assert 0 < len(got) < sent and got == sorted(got)
        assert dropped(cy) == sent - len(got) == main.counters().dropped_frames
        assert sum(n.video_frames for n in notices(cy)) == 0
        assert sum(s.frames for n in notices(cy) for s in n.streams if s.stream_id == stream) == (
            sent - len(got)
        )
        # the others lost nothing and were told nothing
        assert bo.media_from(stream) == list(range(sent))
        assert notices(bo) == notices(ana) == []
        assert cy.joined
