"""A recorder on a real live server (TLS, 127.0.0.1) while the presenter's video is H.264, then VP8.

The presenter (given the floor by a moderator) speaks a 440 Hz tone and shows H.264 frames as a
browser without a VP8 encoder sends them (Annex B), first a "key frame" that
is not one (it must not start a part); then it switches to VP8 and ends the
event. The recorder writes the H.264 part as MP4 (ffprobe: h264 and opus,
every copied picture decodes) and starts a WebM part when the video turns
VP8; the summaries say which container each part is. Which part number the
MP4 gets is not asserted: a part without video comes first if the first key
frame takes longer than ``SETTLE`` on a loaded machine.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np

from tests.client.client_support import EVENT_ID, FAST, Issuer, wait_for
from tests.live.server_support import Pki, running
from tests.recording.probe import codecs, decoded_audio, decoded_video_frames, ffprobe
from tests.recording.test_mp4 import h264_frames
from tests.recording.test_writing import tone, vp8_frames
from townhall.client import Participant
from townhall.client.audio import SAMPLE_RATE, encode_opus, send_packets
from townhall.live import ServerRole
from townhall.pki import DevCA
from townhall.recording.recorder import Summary, folder_for, record
from townhall.ticket import Role as TicketRole
from townhall.ticket import ServerEntry, Zone
from townhall.wire import Codec


async def show(presenter: Participant, stream: int, frames: list[tuple[bytes, bool]]) -> None:
    """Send ``frames`` at 30 a second."""
    for index, (payload, key) in enumerate(frames):
        presenter.send_media(stream, payload, index * 33_333, keyframe=key)
        await asyncio.sleep(1 / 30)


async def test_an_h264_presenter_is_recorded_as_mp4_and_vp8_after_it_as_webm(
    tmp_path: Path,
) -> None:
    issuer = Issuer(DevCA.ensure(tmp_path / "pki"))
    data = tmp_path / "data"
    async with running(Pki(tmp_path), "main") as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        servers = [ServerEntry(name="main", host="127.0.0.1", port=main.port, zone=Zone.INTERNAL)]
        moderator = Participant(
            issuer.ticket(issuer.credential("ana", TicketRole.MODERATOR), servers), settings=FAST
        )
        presenter = Participant(issuer.ticket(issuer.credential("bo"), servers), settings=FAST)
        await moderator.join()
        await presenter.join()
        await wait_for(lambda: "bo" in moderator.roster)
        moderator.give_floor("bo")
        recorder_ticket = issuer.ticket(issuer.credential("recorder"), servers)
        recording = asyncio.create_task(record(recorder_ticket, data, settings=FAST))
        await wait_for(lambda: "recorder" in presenter.roster)

        voice = await presenter.open_stream(Codec.OPUS)
        speaking = asyncio.create_task(
            send_packets(
                lambda packet, ts: presenter.send_media(voice, packet, ts),
                encode_opus(tone(6.0, 440)),
            )
        )
        camera = await presenter.open_stream(Codec.H264)
        await asyncio.sleep(0.2)  # the recorder has chosen the stream
        presenter.send_media(camera, b"\x00\x00\x01\x65not a picture", 0, keyframe=True)
        h264 = h264_frames(90)
        await show(presenter, camera, h264)
        presenter.close_stream(camera)
        camera = await presenter.open_stream(Codec.VP8)
        await show(presenter, camera, vp8_frames(60))
        await speaking
        moderator.end_event()
        summary = await asyncio.wait_for(recording, 30)

    folder = folder_for(data, EVENT_ID)
    summaries = [Summary(**json.loads(p.read_text())) for p in sorted(folder.glob("*.json"))]
    summaries.sort(key=lambda s: s.part)
    assert summary == summaries[-1] and summary.complete and summary.container == "webm"
    mp4 = [s for s in summaries if s.container == "mp4"]
    assert len(mp4) == 1 and mp4[0].complete  # ended by the switch, not cut short
    assert summaries[-1].part == mp4[0].part + 1

    media = folder / ("recording.mp4" if mp4[0].part == 1 else f"recording-{mp4[0].part}.mp4")
    streams = codecs(ffprobe(media))
    assert streams["video"]["codec_name"] == "h264" and streams["audio"]["codec_name"] == "opus"
    assert (streams["video"]["width"], streams["video"]["height"]) == (320, 240)
    assert 0 < mp4[0].video_frames <= len(h264)
    assert decoded_video_frames(media) == mp4[0].video_frames
    pcm = decoded_audio(media)
    assert len(np.flatnonzero(np.abs(pcm) > 3000)) >= 1.5 * SAMPLE_RATE  # the tone, 3 s of it

    webm = folder / f"recording-{summaries[-1].part}.webm"
    streams = codecs(ffprobe(webm))
    assert streams["video"]["codec_name"] == "vp8" and summaries[-1].video_frames > 0
