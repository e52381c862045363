"""``record``: a listener that joins an event's tree and writes what it hears and sees.

It joins with a recorder ticket (``townhall record --ticket``) like any
participant, through server selection and with the session's rejoining, and
never sends media or chat; started before the tree is up, it keeps trying
until the event is live. Every ``TICK`` it hands the mixer's finished audio
to the part's writer; each relayed video frame of the current video source
goes into the file as it is (the source is the newest shared screen, else
the newest camera; a new source is asked for a key frame); each public chat
message becomes a WebVTT cue. Once joined it tells the event it records
(wire ``SetRecording``: every participant is shown it); while a moderator
has paused it, it writes nothing and the file's timeline skips the pause.
It stops when the event ends, when ``stop`` is set (Ctrl-C, SIGTERM), or
when its session ends otherwise, and then writes ``recording.json``: what
was recorded, for the Center and ``bench/recording.py``.

A recorder never overwrites: each part it writes is the next *part* of the
event's recording (``part_names``: ``recording.webm``, ``chat.vtt`` and
``recording.json`` for the first, ``recording-2.webm``, ``chat-2.vtt`` and
``recording-2.json`` for the second, ...), claimed by creating its chat file
and then its media file exclusively, so a recorder restarted after a crash,
or two started at once, keep what the others wrote. A run that never joined
leaves no part.

The container follows the video: a part is WebM (``WebmWriter``) while its
video is VP8 and MP4 (``Mp4Writer``, ``recording.mp4``, ``recording-2.mp4``,
...) while it is H.264. The first part is opened by the chosen source's
first key frame, or after ``SETTLE`` seconds without one (then WebM, and the
audio of those seconds is held until then); when the chosen source's codec
changes, the part ends at its next key frame and the next part starts with
it. A part ended that way is complete: the next one goes on from there.
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

from townhall.client.audio import PCM, SAMPLE_RATE
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
from townhall.recording.container import H264Start, MediaWriter, Mp4Writer, WebmWriter, h264_start
from townhall.recording.mixer import Mixer
from townhall.ticket import TicketContents
from townhall.wire import Codec, RecordingState, StreamKind

__all__ = [
    "AUDIO_FILE",
    "CHAT_FILE",
    "CONTAINERS",
    "MAX_PARTS",
    "MP4_FILE",
    "SETTLE",
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
MP4_FILE: Final = "recording.mp4"
CONTAINERS: Final = ("webm", "mp4")
CHAT_FILE: Final = "chat.vtt"
SUMMARY_FILE: Final = "recording.json"
TICK: Final = 0.1
SETTLE: Final = 3.0  # seconds after joining that a first key frame may take to choose the container
# Started before the tree is up (or while it restarts): try again, this long at most apart.
_NOT_YET: Final = frozenset({"unreachable", "event-not-live", "server-full"})
_JOIN_BACKOFF: Final = Backoff(initial=0.5, maximum=5.0)
MAX_PARTS: Final = 999  # the Center lists at most this many parts of one recording
_PART_FILE: Final = re.compile(r"(?:recording|chat)(?:-([1-9][0-9]{0,2}))?\.(?:webm|mp4|vtt)")
_CONTAINER_OF: Final = {Codec.VP8: "webm", Codec.H264: "mp4"}
_MAX_HELD_CHAT: Final = 200  # messages before the first part is opened (SETTLE)


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
    container: str  # "webm" or "mp4": the media file's extension


def part_names(number: int, container: str = "webm") -> PartNames:
    """Part 1 keeps the names of a recording in one part; part n adds ``-n``."""
    if not 1 <= number <= MAX_PARTS:
        raise ValueError(f"a part is numbered 1 to {MAX_PARTS}, not {number}")
    if container not in CONTAINERS:
        raise ValueError(f"a part is one of {CONTAINERS}, not {container!r}")
    suffix = "" if number == 1 else f"-{number}"
    return PartNames(number, f"recording{suffix}.{container}", f"chat{suffix}.vtt",
                     f"recording{suffix}.json", container)  # fmt: skip


def next_part(folder: Path) -> int:
    """The number after every part in ``folder`` (a media or a chat file holds a number)."""
    taken = [0]
    for name in os.listdir(folder):
        found = _PART_FILE.fullmatch(name)
        if found:
            taken.append(int(found.group(1) or 1))
    return max(taken) + 1


def claim_part(folder: Path, container: str = "webm", *, first: int = 1) -> PartNames:
    """The next part after every part in ``folder`` (and at least ``first``: the parts
    before it were moved to the object store), its chat and media files created
    (empty) for us: the chat file is the claim, whatever the container."""
    number = max(next_part(folder), first)
    while True:
        names = part_names(number, container)  # ValueError past MAX_PARTS: nothing overwritten
        try:
            (folder / names.chat).open("xb").close()
            (folder / names.media).open("xb").close()
        except FileExistsError:
            number += 1  # another recorder claimed it between listing and now
            continue
        return names


@dataclass(frozen=True, slots=True)
class Summary:
    """What one recording holds, written beside it as ``recording.json``."""

    event_id: int
    part: int  # 1 for recording.webm (or .mp4), n for recording-n.webm
    seconds: float
    audio_streams: int
    video_frames: int
    chat_messages: int
    relayed_bytes: int  # media payload bytes the recorder received
    file_bytes: int
    complete: bool  # False: the recorder stopped before the event ended
    container: str = "webm"  # "mp4" when the part's video is H.264


class _Part:
    """One part being written: its files, where it starts on the run's timeline."""

    def __init__(self, folder: Path, names: PartNames, writer: MediaWriter, base: float) -> None:
        self.names = names
        self.writer = writer
        self.chat = ChatTrack(folder / names.chat)
        self.base = base  # seconds of the run's timeline (pauses skipped) before this part

    def close(self) -> None:
        self.writer.close()
        self.chat.close()


class _Session:
    def __init__(self, folder: Path, event_id: int, start: float, first_part: int = 1) -> None:
        self.folder = folder
        self.first_part = first_part
        self.event_id = event_id
        self.start = start
        self.mixer = Mixer(start)
        self.part: _Part | None = None
        self.written = 0  # samples of the mix in the parts before the current one
        self.held: list[PCM] = []  # the mix while no part is open yet (``SETTLE``)
        self.held_chat: list[tuple[float, str, str]] = []
        self.settle_until: float | None = None
        self.participant: Participant | None = None
        self.video_source: int | None = None
        self.video_rank = (-1, -1)
        self.audio_streams: set[int] = set()  # in the current part
        self.relayed = 0  # in the current part
        self.paused = False
        self.skipped = 0  # mixed samples dropped while paused: the file's timeline skips them
        self.ended = asyncio.Event()
        self.left: Left | None = None

    def at(self, now: float) -> float:
        """``now`` on the run's timeline (seconds): the parts one after the other."""
        return now - self.start - self.skipped / SAMPLE_RATE

    def tick(self, now: float) -> None:
        pcm = self.mixer.pull(now)
        if self.paused:
            self.skipped += len(pcm)
        elif self.part is not None:
            self.part.writer.audio(pcm)
        else:
            self.held.append(pcm)
            if self.settle_until is not None and now >= self.settle_until:
                self._open_part("webm", None)  # no key frame came: audio (and VP8 later)

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
            case MediaReceived(codec=Codec.VP8 | Codec.H264):
                self.relayed += len(event.payload)
                if event.stream_id == self.video_source:
                    self._video(event, now)
            case StreamStarted(codec=Codec.VP8 | Codec.H264):
                self._choose_video(event)
            case StreamEnded():
                self.mixer.close(event.stream_id)
                if event.stream_id == self.video_source:
                    self.video_source, self.video_rank = None, (-1, -1)
            case ChatReceived(to=None) if not self.paused:
                shown = event.shown_sender  # the recording's viewers read display names
                if self.part is not None:
                    self.part.chat.add(self.at(now) - self.part.base, shown, event.text)
                elif len(self.held_chat) < _MAX_HELD_CHAT:
                    self.held_chat.append((self.at(now), shown, event.text))
            case Left():
                self.left = event
                self.ended.set()
            case _:
                pass

    def _video(self, event: MediaReceived, now: float) -> None:
        assert event.codec is not None  # matched VP8 or H264
        container = _CONTAINER_OF[event.codec]
        if self.part is None or self.part.names.container != container:
            if not event.keyframe:
                return  # a part starts with a key frame
            start = h264_start(event.payload) if event.codec is Codec.H264 else None
            if event.codec is Codec.H264 and start is None:
                return  # not a key frame an MP4 can start with: wait for the next
            if not self._open_part(container, start):
                return
        part = self.part
        assert part is not None
        at_ms = round((self.at(now) - part.base) * 1000)
        part.writer.video(at_ms, event.payload, event.keyframe)

    def _open_part(self, container: str, start: H264Start | None) -> bool:
        """End the current part (complete) and start the next; False when no part number
        is left (the current part goes on)."""
        try:
            names = claim_part(self.folder, container, first=self.first_part)
        except ValueError:
            if self.part is None:
                raise
            return False
        media = self.folder / names.media
        try:
            writer: MediaWriter = WebmWriter(media) if start is None else Mp4Writer(media, start)
        except BaseException:
            media.unlink(missing_ok=True)
            (self.folder / names.chat).unlink(missing_ok=True)
            raise
        if self.part is not None:
            self._close_part(complete=True)
        part = _Part(self.folder, names, writer, self.written / SAMPLE_RATE)
        for pcm in self.held:
            writer.audio(pcm)
        for at, sender, text in self.held_chat:
            part.chat.add(at - part.base, sender, text)
        self.held, self.held_chat = [], []
        self.part = part
        return True

    def _close_part(self, *, complete: bool) -> Summary:
        part = self.part
        assert part is not None
        self.part = None
        part.close()
        self.written += round(part.writer.seconds * SAMPLE_RATE)
        summary = Summary(
            event_id=self.event_id,
            part=part.names.number,
            seconds=round(part.writer.seconds, 3),
            audio_streams=len(self.audio_streams),
            video_frames=part.writer.video_frames,
            chat_messages=part.chat.cues,
            relayed_bytes=self.relayed,
            file_bytes=(self.folder / part.names.media).stat().st_size,
            complete=complete,
            container=part.names.container,
        )
        text = json.dumps(asdict(summary), indent=1) + "\n"
        (self.folder / part.names.summary).write_text(text)
        self.audio_streams, self.relayed = set(), 0
        return summary

    def finish(self) -> None:
        """The run is over: the last part gets the rest of the mix and is closed (its
        summary is ``summarize``'s); the run joined, so there is a part, if only WebM."""
        if self.part is None:
            self._open_part("webm", None)
        assert self.part is not None
        self.part.writer.audio(self.mixer.drain())
        self.part.writer.close()
        self.part.chat.close()

    def summarize(self, *, complete: bool) -> Summary:
        return self._close_part(complete=complete)

    def _announce(self) -> None:
        if self.participant is not None:
            with contextlib.suppress(NotConnected):
                self.participant.set_recording(RecordingState.RECORDING)

    def _restart_video(self) -> None:
        if self.part is not None:
            self.part.writer.new_video_source()
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
        if self.part is not None:
            self.part.writer.new_video_source()
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
    first_part: int = 1,
) -> Summary:
    """Join the ticket's event and record it into ``folder_for(data, event)`` until it
    ends; its parts are numbered from ``first_part`` on (or after those in the folder)."""
    folder = folder_for(data, ticket.event_id)
    folder.mkdir(parents=True, exist_ok=True)
    part_names(max(next_part(folder), first_part))  # ValueError past MAX_PARTS, before joining
    loop = asyncio.get_running_loop()
    session = _Session(folder, ticket.event_id, loop.time(), first_part)
    participant = Participant(ticket, settings=settings, on_event=session.on_event)
    session.participant = participant
    stop = stop if stop is not None else asyncio.Event()
    joined = False
    try:
        if not await _join(participant, stop):
            raise JoinFailed("stopped", "the recording was stopped before the event was live")
        joined = True
        session.settle_until = loop.time() + SETTLE
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
        if joined:  # a run that never joined leaves no part
            session.finish()
    complete = session.left is not None and session.left.reason.value == "event-ended"
    return session.summarize(complete=complete)
