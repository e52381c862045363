"""The participant against the real ``LiveServer``: a main server and a DMZ child over TLS."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import numpy as np

from tests.client.client_support import FAST, Issuer, Watcher, dominant_frequency, wait_for
from tests.live.server_support import Pki, running
from townhall.client import (
    AttendanceCounted,
    ChatReceived,
    ConnectionLost,
    FloorChanged,
    Joined,
    KeyFrameRequested,
    MediaReceived,
    Participant,
)
from townhall.client.audio import Recorder, encode_opus, send_packets, to_mono_48k
from townhall.client.events import event_json
from townhall.live import ServerRole
from townhall.live.server import LiveServer
from townhall.ticket import Role as TicketRole
from townhall.ticket import ServerEntry, Zone
from townhall.wire import ByeReason, Codec


@contextlib.asynccontextmanager
async def tree(
    issuer: Issuer, tmp_path: Path, **options: Any
) -> AsyncIterator[tuple[LiveServer, LiveServer]]:
    pki = Pki(tmp_path)  # the issuer's CA: tmp_path / "pki"
    async with running(pki, "main", **options) as main, running(pki, "dmz", **options) as dmz:
        key = issuer.signing_key.public_key()
        main.assign(issuer.assignment(ServerRole.MAIN, children=["dmz"]), key)
        dmz.assign(issuer.assignment(ServerRole.CHILD, parent=f"127.0.0.1:{main.port}"), key)
        await wait_for(lambda: dmz.status()[0].upstream == "up")
        yield main, dmz


def _entries(main: LiveServer, dmz: LiveServer) -> list[ServerEntry]:
    return [
        ServerEntry(name="dmz", host="127.0.0.1", port=dmz.port, zone=Zone.DMZ),
        ServerEntry(name="main", host="127.0.0.1", port=main.port, zone=Zone.INTERNAL),
    ]


async def test_participants_on_two_live_servers_chat_hear_a_tone_and_survive_a_child_going_down(
    issuer: Issuer, tmp_path: Path
) -> None:
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo, cy = issuer.credential("bo"), issuer.credential("cy")
    async with tree(issuer, tmp_path) as (main, dmz):
        servers = _entries(main, dmz)
        sessions = [
            Participant(issuer.ticket(ana, servers), settings=FAST),
            Participant(issuer.ticket(bo, servers), zone=Zone.DMZ, settings=FAST),
            Participant(issuer.ticket(cy, servers), settings=FAST),
        ]
        for session in sessions:
            await session.join()
        moderator, speaker, listener = (Watcher(s) for s in sessions)
        assert [s.server for s in sessions] == ["main", "dmz", "main"]
        assert sessions[0].ranking is not None and sessions[0].ranking.zone is Zone.INTERNAL
        await wait_for(lambda: {"ana", "bo", "cy"} <= set(sessions[2].roster))

        sessions[0].say("hello from main")
        sessions[1].say("hello from the dmz")
        for watcher in (moderator, speaker, listener):
            await watcher.wait(lambda e, w=watcher: len(w.chats()) == 2)  # type: ignore[misc]
            assert sorted(watcher.chats()) == [
                ("ana", "hello from main"),
                ("bo", "hello from the dmz"),
            ]

        sessions[0].give_floor("bo")
        await speaker.wait(lambda e: isinstance(e, FloorChanged) and e.holder == "bo")
        stream_id = await sessions[1].open_stream()
        await wait_for(lambda: any(i.owner == "bo" for i in sessions[2].streams.values()))
        recorder = Recorder(start=0.0)
        seconds = np.arange(48_000) / 48_000
        tone = (np.sin(2 * np.pi * 440 * seconds) * 12_000).astype(np.int16).reshape(-1, 1)
        packets = encode_opus(to_mono_48k(tone, 48_000))
        await send_packets(
            lambda packet, ts: sessions[1].send_media(stream_id, packet, ts), packets
        )
        await listener.wait(lambda e: len(listener.of(MediaReceived)) >= len(packets) - 2)
        for frame in listener.of(MediaReceived):
            recorder.feed(frame, now=0.0)
        assert abs(dominant_frequency(recorder.pcm()) - 440.0) <= 5.0

        await dmz.close()  # Bye shutdown: bo runs selection again and joins main
        lost = await speaker.wait(lambda e: isinstance(e, ConnectionLost))
        assert lost.reason is ByeReason.SHUTDOWN  # type: ignore[union-attr]
        again = await speaker.wait(lambda e: isinstance(e, Joined) and e.rejoin)
        assert again.server == "main"  # type: ignore[union-attr]
        sessions[2].say("welcome back")
        await speaker.wait(lambda e: isinstance(e, ChatReceived) and e.text == "welcome back")
        assert sorted(speaker.chats()) == [
            ("ana", "hello from main"),
            ("bo", "hello from the dmz"),
            ("cy", "welcome back"),
        ]
        for watcher in (moderator, speaker, listener):
            await watcher.stop()


async def test_a_viewer_asks_for_a_key_frame_and_the_owner_is_told_under_its_own_stream_id(
    issuer: Issuer, tmp_path: Path
) -> None:
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo = issuer.credential("bo")
    async with tree(issuer, tmp_path) as (main, dmz):
        servers = _entries(main, dmz)
        owner = Participant(issuer.ticket(ana, servers), settings=FAST)
        viewer = Participant(issuer.ticket(bo, servers), zone=Zone.DMZ, settings=FAST)
        for session in (owner, viewer):
            await session.join()
        watching = Watcher(owner)
        stream_id = await owner.open_stream(Codec.VP8)
        await wait_for(lambda: any(i.owner == "ana" for i in viewer.streams.values()))
        seen_as = next(i.stream_id for i in viewer.streams.values() if i.owner == "ana")
        viewer.request_key_frame(seen_as)  # across the tree: dmz, then main
        await watching.wait(lambda e: isinstance(e, KeyFrameRequested))
        assert watching.of(KeyFrameRequested) == [KeyFrameRequested(stream_id)]
        for session in (owner, viewer):
            await session.leave()


async def test_in_a_large_event_a_participant_lists_the_stage_and_counts_everyone(
    issuer: Issuer, tmp_path: Path
) -> None:
    ana = issuer.credential("ana", TicketRole.MODERATOR)
    bo, cy, di = issuer.credential("bo"), issuer.credential("cy"), issuer.credential("di")
    async with tree(issuer, tmp_path, room_defaults={"roster_limit": 2}) as (main, dmz):
        servers = _entries(main, dmz)
        moderator = Participant(issuer.ticket(ana, servers), settings=FAST)
        bo_session = Participant(issuer.ticket(bo, servers), zone=Zone.DMZ, settings=FAST)
        cy_session = Participant(issuer.ticket(cy, servers), settings=FAST)
        watching_bo = Watcher(bo_session)
        for session in (moderator, bo_session, cy_session):
            await session.join()
        await wait_for(lambda: not bo_session.everyone_listed and bo_session.attendance == 3)
        await wait_for(lambda: set(moderator.roster) == {"ana", "bo", "cy"})
        assert set(bo_session.roster) == {"ana", "bo"}  # the stage (the moderator) and itself
        assert moderator.everyone_listed

        late = Participant(issuer.ticket(di, servers), settings=FAST)
        await late.join()
        await watching_bo.wait(lambda e: isinstance(e, AttendanceCounted) and e.members == 4)
        assert event_json(watching_bo.of(AttendanceCounted)[-1]) == {
            "type": "attendance",
            "members": 4,
            "roster": "stage",
        }
        assert "di" not in bo_session.roster and "di" in moderator.roster

        cy_session.raise_hand()  # a raised hand goes on stage for everyone to see
        await wait_for(lambda: "cy" in bo_session.roster and bo_session.roster["cy"].hand_raised)
        await watching_bo.stop()
        for session in (moderator, bo_session, cy_session, late):
            await session.leave()
