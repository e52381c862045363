"""``record``: a listener that joins an event's tree and writes what it hears and sees.

It joins with a recorder ticket (``townhall record --ticket``) like any
participant, through server selection and with the session's rejoining, and
never sends media or chat; started before the tree is up, it keeps trying
until the event is live. Every ``TICK`` it hands the mixer's finished audio
to the WebM writer; each relayed VP8 frame of the current video source goes
into the file as it is (the source is the newest shared screen, else the
newest camera; a new source is asked for a key frame); each public chat
message becomes a WebVTT cue. Once joined it tells the event it records
(wire ``SetRecording``: every participant is shown it); while a moderator
has paused it, it writes nothing and the file's timeline skips the pause.
It stops when the event ends, when ``stop`` is set (Ctrl-C, SIGTERM), or
when its session ends otherwise, and then writes ``recording.json``: what
was recorded, for the Center and ``bench/recording.py``.

A recorder never overwrites: each run writes the next *part* of the event's
recording (``part_names``: ``recording.webm``, ``chat.vtt`` and
``recording.json`` for the first, ``recording-2.webm``, ``chat-2.vtt`` and
``recording-2.json`` for the second, ...), claimed by creating its file
exclusively, so a recorder restarted after a crash, or two started at once,
keep what the others wrote. A run that never joined leaves no part.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from townhall.client.events import (
    ChatReceived,
    ClientEvent,
    Joined,
    Left,
    MediaReceived,
    RecordingStateChanged,
    StreamEnded,
    StreamStarted,
)
from townhall.client.session import ClientSettings, JoinFailed, NotConnected, Participant
from townhall.live.backoff import Backoff
from townhall.recording.chat import ChatTrack
from townhall.recording.container import WebmWriter
from townhall.recording.mixer import Mixer
from townhall.ticket import TicketContents
from townhall.wire import Codec, RecordingState, StreamKind

__all__ = [
    "AUDIO_FILE",
    "CHAT_FILE",
    "MAX_PARTS",
    "SUMMARY_FILE",
    "TICK",
    "PartNames",
    "Summary",
    "claim_part",
    "folder_for",
    "part_names",
    "record",
]

AUDIO_FILE: Final = "recording.webm"
CHAT_FILE: Final = "chat.vtt"
SUMMARY_FILE: Final = "recording.json"
TICK: Final = 0.1
# Started before the tree is up (or while it restarts): try again, this long at most apart.
_NOT_YET: Final = frozenset({"unreachable", "event-not-live", "server-full"})
_JOIN_BACKOFF: Final = Backoff(initial=0.5, maximum=5.0)
MAX_PARTS: Final = 999  # the Center lists at most this many parts of one recording
_PART_MEDIA: Final = re.compile(r"recording(?:-([1-9][0-9]{0,2}))?\.webm")


def folder_for(data: Path, event_id: int) -> Path:
    """Where an event's recording lives: ``<data>/recordings/<event id>/`` (the Center's store)."""
    return data / "recordings" / str(event_id)


@dataclass(frozen=True, slots=True)
class PartNames:
    """The file names of one part of a recording (center.recordings reads the same names)."""

    number: int
    media: str
    chat: str
    summary: str


def part_names(number: int) -> PartNames:
    """Part 1 keeps the names of a recording in one part; part n adds ``-n``."""
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"a part is numbered 1 to {MAX_PARTS}, not {number}")
    if number == 1:
        return PartNames(1, AUDIO_FILE, CHAT_FILE, SUMMARY_FILE)
    return PartNames(number, f"recording-{number}.webm", f"chat-{number}.vtt",
                     f"recording-{number}.json")  # fmt: skip


def claim_part(folder: Path) -> PartNames:
    """The next part after every part in ``folder``, its media file created (empty) for us."""
    taken = [0]
    for name in os.listdir(folder):
        found = _PART_MEDIA.fullmatch(name)
        if found:
            taken.append(int(found.group(1) or 1))
    number = max(taken) + 1
    while True:
        names = part_names(number)  # ValueError past MAX_PARTS: nothing is overwritten
        try:
            (folder / names.media).open("xb").close()
        except FileExistsError:
            number += 1  # another recorder claimed it between listing and now
            continue
        return names


@dataclass(frozen=True, slots=True)
class Summary:
    """What one recording holds, written beside it as ``recording.json``."""

    event_id: int
    part: int  # 1 for recording.webm, n for recording-n.webm
    seconds: float
    audio_streams: int
    video_frames: int
    chat_messages: int
    relayed_bytes: int  # media payload bytes the recorder received
    file_bytes: int
    complete: bool  # False: the recorder stopped before the event ended


class _Session:
    def __init__(self, folder: Path, names: PartNames, start: float) -> None:
        self.start = start
        self.mixer = Mixer(start)
        self.writer = WebmWriter(folder / names.media)
        self.chat = ChatTrack(folder / names.chat)
        self.participant: Participant | None = None
        self.video_source: int | None = None
        self.video_rank = (-1, -1)
        self.audio_streams: set[int] = set()
        self.relayed = 0
        self.paused = False
        self.skipped = 0  # mixed samples dropped while paused: the file's timeline skips them
        self.ended = asyncio.Event()
        self.left: Left | None = None

    def at(self, now: float) -> float:
        """``now`` on the file's timeline (seconds)."""
        return now - self.start - self.skipped / 48_000

    def tick(self, now: float) -> None:
        pcm = self.mixer.pull(now)
        if self.paused:
            self.skipped += len(pcm)
        else:
            self.writer.audio(pcm)

    def on_event(self, event: ClientEvent) -> None:
        now = asyncio.get_running_loop().time()
        match event:
            case Joined():
                # Everyone is told the event is recorded (the Floor keeps the state);
                # after a rejoin the Floor may have forgotten us, so say it again.
                self._announce()
            case RecordingStateChanged(state=state):
                paused = state is RecordingState.PAUSED
                if self.paused and not paused:
                    self._restart_video()
                self.paused = paused
            case MediaReceived() if self.paused:
                self.relayed += len(event.payload)
            case MediaReceived(codec=Codec.OPUS):
                self.relayed += len(event.payload)
                self.audio_streams.add(event.stream_id)
                self.mixer.feed(event.stream_id, event.seq, event.payload, now)
            case MediaReceived(codec=Codec.VP8):
                self.relayed += len(event.payload)
                if event.stream_id == self.video_source:
                    at_ms = round(self.at(now) * 1000)
                    self.writer.video(at_ms, event.payload, event.keyframe)
            case StreamStarted(codec=Codec.VP8):
                self._choose_video(event)
            case StreamEnded():
                self.mixer.close(event.stream_id)
                if event.stream_id == self.video_source:
                    self.video_source, self.video_rank = None, (-1, -1)
            case ChatReceived(to=None) if not self.paused:
                self.chat.add(self.at(now), event.sender, event.text)
            case Left():
                self.left = event
                self.ended.set()
            case _:
                pass

    def _announce(self) -> None:
        if self.participant is not None:
            with contextlib.suppress(NotConnected):
                self.participant.set_recording(RecordingState.RECORDING)

    def _restart_video(self) -> None:
        self.writer.new_video_source()
        if self.participant is not None and self.video_source is not None:
            with contextlib.suppress(NotConnected):
                self.participant.request_key_frame(self.video_source)

    def _choose_video(self, event: StreamStarted) -> None:
        participant = self.participant
        info = participant.streams.get(event.stream_id) if participant else None
        screen = int(info is not None and info.kind is StreamKind.SCREEN)
        rank = (screen, event.stream_id)
        if self.video_source is not None and rank < self.video_rank:
            return
        self.video_source, self.video_rank = event.stream_id, rank
        self.writer.new_video_source()
        if participant is not None:
            with contextlib.suppress(NotConnected):
                participant.request_key_frame(event.stream_id)


async def _join(participant: Participant, stop: asyncio.Event) -> bool:
    """Join, trying again while the event is not live yet; False if stopped first."""
    attempt = 0
    while not stop.is_set():
        try:
            await participant.join()
            return True
        except JoinFailed as failed:
            if failed.reason not in _NOT_YET:
                raise
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), _JOIN_BACKOFF.delay(attempt, 0.0))
        attempt += 1
    return False


async def record(
    ticket: TicketContents,
    data: Path,
    *,
    stop: asyncio.Event | None = None,
    settings: ClientSettings | None = None,
) -> Summary:
    """Join the ticket's event and record it into ``folder_for(data, event)`` until it ends."""
    folder = folder_for(data, ticket.event_id)
    folder.mkdir(parents=True, exist_ok=True)
    names = claim_part(folder)
    loop = asyncio.get_running_loop()
    try:
        session = _Session(folder, names, loop.time())
    except BaseException:
        (folder / names.media).unlink(missing_ok=True)
        raise
    participant = Participant(ticket, settings=settings, on_event=session.on_event)
    session.participant = participant
    stop = stop if stop is not None else asyncio.Event()
    joined = False
    try:
        if not await _join(participant, stop):
            raise JoinFailed("stopped", "the recording was stopped before the event was live")
        joined = True
        waiters = {asyncio.ensure_future(session.ended.wait()), asyncio.ensure_future(stop.wait())}
        try:
            while not (session.ended.is_set() or stop.is_set()):
                await asyncio.wait(waiters, timeout=TICK, return_when=asyncio.FIRST_COMPLETED)
                session.tick(loop.time())
        finally:
            for waiter in waiters:
                waiter.cancel()
        if session.left is None:
            await participant.leave("recording stopped")
    finally:
        session.writer.audio(session.mixer.drain())
        session.writer.close()
        session.chat.close()
        if not joined:  # nothing was recorded: leave no empty part behind
            (folder / names.media).unlink(missing_ok=True)
            (folder / names.chat).unlink(missing_ok=True)
    complete = session.left is not None and session.left.reason.value == "event-ended"
    summary = Summary(
        event_id=ticket.event_id,
        part=names.number,
        seconds=round(session.writer.seconds, 3),
        audio_streams=len(session.audio_streams),
        video_frames=session.writer.video_frames,
        chat_messages=session.chat.cues,
        relayed_bytes=session.relayed,
        file_bytes=(folder / names.media).stat().st_size,
        complete=complete,
    )
    (folder / names.summary).write_text(json.dumps(asdict(summary), indent=1) + "\n")
    return summary
