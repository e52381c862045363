"""``Participant``: one member's live session, joined through server selection, kept across servers.

``join`` runs Intelligent Server Selection (``townhall.client.selection``),
presents the ticket's sealed credential on the best server's probe
connection (falling back down the ranking when a server is full, not
holding the event, or drops us), and from then on reports what the server
sends as typed events (``townhall.client.events``), through an async
iterator (``async for event in participant``) or an ``on_event`` callback.
Commands are methods: ``say``, ``raise_hand``, ``lower_hand``, ``give_floor``,
``take_floor``, ``mute``, ``remove``, ``set_mode``, ``set_recording``, ``end_event``,
``open_stream``, ``close_stream``, ``send_media``, polls (``create_poll``, ``open_poll``,
``close_poll``, ``share_poll_results``, ``vote``), Q&A (``ask``, ``upvote``,
``answer``, ``mark_answered_live``, ``dismiss``), ``leave``. Keepalive is the wire core's
(``townhall.client.link`` arms its timer and answers Pings).

When the server goes away without ending our membership (EOF, a timeout,
``shutdown``: not ``removed``, ``replaced``, ``event-ended`` or our own
leaving), the session runs selection again and joins elsewhere, with backoff
and a bounded number of tries, re-opens the streams it was sending (callers
keep using the first stream id), and drops chat the new server replays that
it already reported, by ``(sender, seq)``. Its own chat numbers start at the
Unix time of the session in milliseconds (modulo 2**32), so a user who starts
the client again, even within the same second, does not reuse the
``(sender, seq)`` of a message the others have already seen.
docs/client.md is the guide.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from townhall.client.events import (
    AttendanceCounted,
    ChatReceived,
    ClientEvent,
    ConnectionLost,
    FloorChanged,
    HandsChanged,
    Joined,
    KeyFrameRequested,
    Left,
    MainReachChanged,
    MediaReceived,
    MediaSkipped,
    PollChanged,
    QuestionChanged,
    RecordingStateChanged,
    Rejoining,
    RequestRefused,
    RosterChanged,
    StateChanged,
    StreamEnded,
    StreamStarted,
)
from townhall.client.link import CLIENT_NAME, AuthRefused, Link, LinkClosed
from townhall.client.selection import PINGS, PROBE_TIMEOUT, Probe, Ranking, close_links, select
from townhall.live.backoff import Backoff
from townhall.ticket import TicketContents
from townhall.wire import (
    AskQuestion,
    AttendanceChanged,
    AuthFailure,
    AuthOk,
    ByeReason,
    ChatPosted,
    ClosePoll,
    CloseStream,
    Codec,
    ConnectionClosed,
    CreatePoll,
    EndEvent,
    Error,
    ErrorCode,
    Event,
    GiveFloor,
    LowerHand,
    MediaDropped,
    MediaFrame,
    Member,
    Message,
    Mute,
    OpenPoll,
    OpenStream,
    Poll,
    PollUpdated,
    Question,
    QuestionState,
    QuestionUpdated,
    RaiseHand,
    RecordingChanged,
    RecordingState,
    Remove,
    RequestKeyFrame,
    RosterUpdate,
    RosterView,
    SendChat,
    SetRecording,
    SetSpeakingMode,
    Settings,
    SettleQuestion,
    SharePollResults,
    SpeakingMode,
    StateSnapshot,
    StreamClosed,
    StreamInfo,
    StreamOpened,
    TakeFloor,
    UpstreamChanged,
    UpvoteQuestion,
    Vote,
)
from townhall.wire.names import Zone

__all__ = [
    "ClientError",
    "ClientSettings",
    "JoinFailed",
    "NotConnected",
    "Participant",
    "StreamRefused",
]

# Ends the membership: joining again would be refused, or would evict ourselves.
_FINAL: Final = frozenset(
    {
        ByeReason.NORMAL,
        ByeReason.REMOVED,
        ByeReason.REPLACED,
        ByeReason.EVENT_ENDED,
        ByeReason.AUTH_FAILED,
        ByeReason.UNSUPPORTED_VERSION,
    }
)
# A server that is full or does not hold the event: another of the ticket may.
_TRY_NEXT: Final = frozenset({AuthFailure.SERVER_FULL, AuthFailure.EVENT_NOT_LIVE})
_U32: Final = 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class ClientSettings:
    """Timers (seconds) and bounds of a session."""

    probe_timeout: float = PROBE_TIMEOUT
    pings: int = PINGS
    join_timeout: float = 10.0  # Auth to AuthOk on one server
    rejoin_tries: int = 5
    rejoin_delay: float = 0.5  # before the first try; doubled each try, less up to half
    rejoin_max_delay: float = 8.0
    stream_timeout: float = 10.0  # OpenStream to StreamOpened
    max_queued_media: int = 256  # media events waiting for the reader; more are dropped
    seen_chat: int = 100_000  # (sender, seq) remembered to drop replayed chat
    client_name: str = CLIENT_NAME
    wire: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        if self.probe_timeout <= 0 or self.join_timeout <= 0 or self.stream_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.rejoin_tries < 0 or self.max_queued_media < 1:
            raise ValueError("rejoin_tries and max_queued_media out of range")
        if not 0 < self.rejoin_delay <= self.rejoin_max_delay:
            raise ValueError("need 0 < rejoin_delay <= rejoin_max_delay")

    @property
    def rejoin_backoff(self) -> Backoff:
        """Waits before rejoin tries: ``rejoin_delay`` doubling to ``rejoin_max_delay``,
        each shortened by up to half at random (``townhall.live.backoff``)."""
        return Backoff(initial=self.rejoin_delay, maximum=self.rejoin_max_delay)


class ClientError(Exception):
    """Something the session cannot do; the message is for people."""


class JoinFailed(ClientError):
    """No server of the ticket took us. ``reason`` is the ``AuthFailure`` value of the
    refusal (``expired``, ``not-allowed``…; ``server-full`` or ``event-not-live``
    when every server that answered said so), ``unreachable`` when none did, or
    ``unknown-server`` for a forced server the ticket does not list."""

    def __init__(self, reason: str, message: str, ranking: Ranking | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.ranking = ranking


class NotConnected(ClientError):
    """A command while no server connection is open (rejoining, or after leaving)."""


class StreamRefused(ClientError):
    """The server did not open the stream asked for."""


class Participant:
    """One participant's session; ``join`` it, read its events, give commands, ``leave``.

    ``zone`` overrides the preferred zone of server selection; ``server``
    forces one server of the ticket by name for the first join (a rejoin
    after losing it runs selection over them all: staying in the event
    matters more than staying on that server). ``on_event``, when given, takes
    every event instead of the iterator; it runs inside the connection's
    callbacks, so it must be quick and must not raise. ``refresh_ticket``, when given,
    is called for a fresh ticket when a rejoin finds the ticket expired
    (``townhall.client.center.CenterClient.new_ticket``).
    """

    def __init__(
        self,
        ticket: TicketContents,
        *,
        zone: Zone | None = None,
        server: str | None = None,
        settings: ClientSettings | None = None,
        on_event: Callable[[ClientEvent], None] | None = None,
        refresh_ticket: Callable[[], Awaitable[TicketContents]] | None = None,
    ) -> None:
        self._ticket = ticket
        self._zone = zone
        self._only = server
        self._settings = settings if settings is not None else ClientSettings()
        self._on_event = on_event
        self._refresh_ticket = refresh_ticket
        self._queue: deque[ClientEvent] = deque()
        self._queued_media = 0
        self._wake = asyncio.Event()
        self._link: Link | None = None
        self._rejoin_task: asyncio.Task[None] | None = None
        self._leaving = False
        self._left: Left | None = None
        self._done = asyncio.Event()
        self._chat_seq = (time.time_ns() // 1_000_000) & _U32
        self._seen: set[tuple[str, int]] = set()
        self._seen_order: deque[tuple[str, int]] = deque()
        self._roster: dict[str, Member] = {}
        self._streams: dict[int, StreamInfo] = {}
        self._holder: str | None = None
        self._raised: tuple[str, ...] = ()
        self._polls: dict[int, Poll] = {}
        self._questions: dict[int, Question] = {}
        self._openers: deque[tuple[Codec, asyncio.Future[int]]] = deque()
        self._aliases: dict[int, int | None] = {}  # stream id as first opened -> now
        self._codecs: dict[int, Codec] = {}
        self._media_seq: dict[int, int] = {}
        self.ranking: Ranking | None = None
        self.server: str | None = None
        self.name: str | None = None
        self.event: str | None = None
        self.moderator = False
        self.title: str | None = None
        self.mode: SpeakingMode | None = None
        self.attendance = 0
        # False in a large event: the roster holds the stage and us (RosterView)
        self.everyone_listed = True
        # False while our server has told us it cannot reach the main server.
        self.main_reachable = True
        self.recording = RecordingState.OFF  # whether the event is being recorded

    # -- state, as last reported -----------------------------------------------------------

    @property
    def ticket(self) -> TicketContents:
        return self._ticket

    @property
    def roster(self) -> Mapping[str, Member]:
        return dict(self._roster)

    @property
    def streams(self) -> Mapping[int, StreamInfo]:
        return dict(self._streams)

    @property
    def polls(self) -> Mapping[int, Poll]:
        """The polls as last shown to us, by number."""
        return dict(self._polls)

    @property
    def questions(self) -> list[Question]:
        """The questions as last shown to us, most votes first (then the first asked)."""
        return sorted(self._questions.values(), key=lambda q: (-q.votes, q.question_id))

    @property
    def connected(self) -> bool:
        return self._link is not None and self._link.is_open

    @property
    def left(self) -> Left | None:
        """The ``Left`` event once the session is over, else None."""
        return self._left

    # -- joining and leaving ---------------------------------------------------------------

    async def join(self) -> Joined:
        """Select a server and join on it; JoinFailed if none takes us."""
        if self._link is not None or self._left is not None:
            raise ClientError("this session has already joined")
        return await self._connect(rejoin=False)

    async def leave(self, message: str = "left") -> Left:
        """Say Bye normal and end the session (also while rejoining); the final event."""
        self._leaving = True
        task = self._rejoin_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        link = self._link
        if link is not None:
            link.close(message)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(2.0):
                    await link.wait_lost()
        return self._finish(Left(ByeReason.NORMAL, message, by_peer=False))

    async def wait_closed(self) -> Left:
        """Until the session ends (removed, event ended, left, or rejoining gave up)."""
        await self._done.wait()
        if self._left is None:  # _done is set only with _left
            raise ClientError("the session has not ended")
        return self._left

    async def __aenter__(self) -> Participant:
        await self.join()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.leave()

    def __aiter__(self) -> AsyncIterator[ClientEvent]:
        return self.events()

    async def events(self) -> AsyncIterator[ClientEvent]:
        """Every event in order, ending with ``Left`` (unless ``on_event`` takes them)."""
        while True:
            while self._queue:
                event = self._queue.popleft()
                if isinstance(event, MediaReceived):
                    self._queued_media -= 1
                yield event
                if isinstance(event, Left):
                    return
            self._wake.clear()
            await self._wake.wait()

    # -- commands -------------------------------------------------------------------------

    def say(self, text: str, to: str | None = None) -> int:
        """Post chat to everyone, or privately to ``to``; its ``seq``."""
        self._chat_seq = (self._chat_seq + 1) & _U32
        seq = self._chat_seq
        self._send(SendChat(text=text, to=to, seq=seq))
        return seq

    def raise_hand(self) -> None:
        self._send(RaiseHand())

    def lower_hand(self, name: str | None = None) -> None:
        """Lower my hand, or (a moderator) someone else's."""
        self._send(LowerHand(name=name))

    def give_floor(self, name: str) -> None:
        self._send(GiveFloor(name=name))

    def take_floor(self) -> None:
        """Take the floor (a moderator; anyone in ``open`` mode); the holder yields it so."""
        self._send(TakeFloor())

    def mute(self, name: str, muted: bool = True) -> None:
        self._send(Mute(name=name, muted=muted))

    def remove(self, name: str) -> None:
        self._send(Remove(name=name))

    def set_mode(self, mode: SpeakingMode) -> None:
        self._send(SetSpeakingMode(mode=mode))

    def create_poll(
        self,
        question: str,
        options: tuple[str, ...],
        *,
        multiple: bool = False,
        shared: bool = False,
    ) -> None:
        """Write a poll (a moderator); it comes back as a draft ``PollChanged`` to open."""
        self._send(CreatePoll(question=question, options=options, multiple=multiple, shared=shared))

    def open_poll(self, poll_id: int) -> None:
        self._send(OpenPoll(poll_id=poll_id))

    def close_poll(self, poll_id: int) -> None:
        self._send(ClosePoll(poll_id=poll_id))

    def share_poll_results(self, poll_id: int, shared: bool = True) -> None:
        """Show a poll's results to everyone (a moderator), or (False) to moderators only."""
        self._send(SharePollResults(poll_id=poll_id, shared=shared))

    def vote(self, poll_id: int, choices: tuple[int, ...]) -> None:
        """Vote once in a poll: option indices from 0 (one unless the poll is multiple)."""
        self._send(Vote(poll_id=poll_id, choices=choices))

    def ask(self, text: str, *, anonymous: bool = False) -> None:
        """Ask a question; ``anonymous`` hides our name from all but the moderators."""
        self._send(AskQuestion(text=text, anonymous=anonymous))

    def upvote(self, question_id: int) -> None:
        self._send(UpvoteQuestion(question_id=question_id))

    def answer(self, question_id: int, text: str) -> None:
        """Answer a question in writing (a moderator)."""
        self._send(
            SettleQuestion(question_id=question_id, state=QuestionState.ANSWERED, answer=text)
        )

    def mark_answered_live(self, question_id: int) -> None:
        self._send(SettleQuestion(question_id=question_id, state=QuestionState.ANSWERED_LIVE))

    def dismiss(self, question_id: int) -> None:
        self._send(SettleQuestion(question_id=question_id, state=QuestionState.DISMISSED))

    def set_recording(self, state: RecordingState) -> None:
        """A moderator pauses (``paused``) or resumes (``recording``) the recording; a
        recorder says it records or stops. A refusal comes as ``RequestRefused``."""
        self._send(SetRecording(state=state))

    def end_event(self) -> None:
        """End the event for everyone (a moderator): every server says Bye ``event-ended``."""
        self._send(EndEvent())

    async def open_stream(self, codec: Codec = Codec.OPUS) -> int:
        """Ask to send ``codec``; the stream id the server gave (StreamRefused if none).

        The id stays valid for ``send_media`` across a rejoin, where the
        stream is opened again under whatever id the new server gives.
        """
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        opener = (codec, future)
        self._openers.append(opener)
        try:
            self._send(OpenStream(codec=codec))
            async with asyncio.timeout(self._settings.stream_timeout):
                stream_id = await future
        except TimeoutError:
            raise StreamRefused(f"the server did not open a {codec.value} stream") from None
        finally:
            if opener in self._openers:
                self._openers.remove(opener)
        self._aliases[stream_id] = stream_id
        self._codecs[stream_id] = codec
        self._media_seq[stream_id] = 0
        return stream_id

    def close_stream(self, stream_id: int) -> None:
        current = self._aliases.pop(stream_id, None)
        self._codecs.pop(stream_id, None)
        self._media_seq.pop(stream_id, None)
        if current is not None and self.connected:
            self._send(CloseStream(stream_id=current))

    def send_media(
        self, stream_id: int, payload: bytes, timestamp_us: int, *, keyframe: bool = False
    ) -> bool:
        """Send one Opus packet (or VP8 frame) on a stream ``open_stream`` gave.

        False when the frame was dropped: no connection now (rejoining), the
        stream not opened again yet, or the socket full. Raises ValueError for
        a stream id this session did not open.
        """
        if stream_id not in self._aliases:
            raise ValueError(f"stream {stream_id} was not opened by this session")
        current = self._aliases[stream_id]
        link = self._link
        if current is None or link is None or not link.is_open:
            return False
        seq = self._media_seq[stream_id]
        self._media_seq[stream_id] = (seq + 1) & _U32
        frame = MediaFrame.build(
            self._codecs[stream_id].channel,
            stream_id=current,
            seq=seq,
            timestamp_us=timestamp_us,
            payload=payload,
            keyframe=keyframe,
        )
        try:
            return link.send(frame)
        except LinkClosed:
            return False

    def request_key_frame(self, stream_id: int) -> None:
        """Ask for a key frame of someone's VIDEO stream (as ``MediaReceived`` names it):
        after joining late, or when frames went missing; its owner is asked."""
        self._send(RequestKeyFrame(stream_id=stream_id))

    def _send(self, message: Message) -> None:
        link = self._link
        if link is None or not link.is_open:
            raise NotConnected("not connected to a live server now")
        try:
            link.send(message)
        except LinkClosed:
            raise NotConnected("the connection to the live server has ended") from None

    # -- joining: selection, then Auth down the ranking ------------------------------------

    async def _connect(self, *, rejoin: bool) -> Joined:
        settings = self._settings
        try:
            ranking, links = await select(
                self._ticket,
                zone=self._zone,
                only=None if rejoin else self._only,
                probe_timeout=settings.probe_timeout,
                pings=settings.pings,
                settings=settings.wire,
                client_name=settings.client_name,
            )
        except ValueError as error:
            raise JoinFailed("unknown-server", str(error)) from None
        self.ranking = ranking
        unused = dict(links)
        failures = [f"{p.server.name}: {p.error}" for p in ranking.probes if not p.reachable]
        reason = "unreachable"
        try:
            for probe in ranking.reachable:
                link = unused[probe.server.name]  # closed in ``finally`` if cancelled here
                try:
                    async with asyncio.timeout(settings.join_timeout):
                        ok = await link.authenticate(self._ticket.sealed_credential)
                    del unused[probe.server.name]
                except AuthRefused as refused:
                    del unused[probe.server.name]  # the server closes it
                    failures.append(f"{probe.server.name}: {refused}")
                    if refused.reason in _TRY_NEXT:
                        reason = refused.reason.value
                        continue
                    raise JoinFailed(
                        refused.reason.value, f"{probe.server.name} refused us: {refused}", ranking
                    ) from None
                except (LinkClosed, TimeoutError) as error:
                    del unused[probe.server.name]
                    link.abort()
                    failures.append(f"{probe.server.name}: {str(error) or 'no answer to Auth'}")
                    continue
                return self._adopt(link, probe, ok, rejoin=rejoin)
        finally:
            await close_links(unused.values(), "joined another server")
        detail = "; ".join(failures) or "the ticket lists no server"
        raise JoinFailed(reason, f"no live server took us: {detail}", ranking)

    def _adopt(self, link: Link, probe: Probe, ok: AuthOk, *, rejoin: bool) -> Joined:
        if self._leaving:
            link.close("left")
            raise NotConnected("left while joining")
        self._link = link
        self.server = probe.server.name
        self.name, self.event, self.moderator = ok.name, ok.event, ok.moderator
        self._roster.clear()  # the new server sends the whole roster (or the stage)
        self.everyone_listed = True  # until it says otherwise
        self.main_reachable = True  # the new server says so if it cannot reach the main
        self.recording = RecordingState.OFF  # the new server says so if it is recorded
        self._streams.clear()
        joined = Joined(
            probe.server.name,
            ok.name,
            ok.event,
            ok.moderator,
            rejoin=rejoin,
            display_name=ok.display_name,
        )
        self._emit(joined)
        link.attach(self._on_wire)
        if rejoin:
            for original, codec in self._codecs.items():
                self._aliases[original] = None
                with contextlib.suppress(NotConnected):
                    self._send(OpenStream(codec=codec))
        return joined

    async def _rejoin(self) -> None:
        settings = self._settings
        last = "no try was allowed"
        for attempt in range(1, settings.rejoin_tries + 1):
            delay = settings.rejoin_backoff.delay(attempt - 1, random.random())
            self._emit(Rejoining(attempt, delay))
            await asyncio.sleep(delay)
            try:
                await self._connect(rejoin=True)
                return
            except JoinFailed as failed:
                last = str(failed)
                if failed.reason == AuthFailure.EXPIRED.value and self._refresh_ticket:
                    try:
                        self._ticket = await self._refresh_ticket()
                    except Exception as error:  # the Center's own errors, said as they are
                        last = f"{last}; no fresh ticket: {error}"
                        break
                    continue
                if failed.reason not in ("unreachable", *(r.value for r in _TRY_NEXT)):
                    self._finish(Left(ByeReason.AUTH_FAILED, last[:1024], by_peer=True))
                    return
            except NotConnected:
                return
        message = f"no server took us back after {settings.rejoin_tries} tries: {last}"
        self._finish(Left(ByeReason.CONNECTION_LOST, message[:1024], by_peer=True))

    # -- what the server says ------------------------------------------------------------

    def _on_wire(self, event: Event) -> None:
        match event:
            case ConnectionClosed():
                self._on_closed(event)
            case MediaFrame():
                info = self._streams.get(event.stream_id)
                self._emit(
                    MediaReceived(
                        stream_id=event.stream_id,
                        owner=None if info is None else info.owner,
                        codec=None if info is None else info.codec,
                        seq=event.seq,
                        timestamp_us=event.timestamp_us,
                        keyframe=event.keyframe,
                        payload=bytes(event.payload),
                    )
                )
            case ChatPosted(sender=sender, seq=seq):
                if self._remember((sender, seq)):
                    self._emit(
                        ChatReceived(sender, event.text, event.to, seq, event.sender_display_name)
                    )
            case RosterUpdate(changed=changed, left=left):
                for name in left:
                    self._roster.pop(name, None)
                for member in changed:
                    self._roster[member.name] = member
                self._emit(RosterChanged(changed, left))
                self._derive()
            case RosterView(full=full, members=members):
                self._roster.clear()
                self.everyone_listed, self.attendance = full, members
                self._emit(AttendanceCounted(members, full))
                self._derive()
            case AttendanceChanged(members=members):
                self.attendance = members
                self._emit(AttendanceCounted(members, self.everyone_listed))
            case StateSnapshot():
                self.title, self.mode, self.attendance = event.title, event.mode, event.attendance
                self._streams = {info.stream_id: info for info in event.streams}
                for info in event.streams:
                    self._claim(info)
                self._emit(
                    StateChanged(
                        event.event, event.title, event.mode, event.attendance, event.streams
                    )
                )
            case StreamOpened(stream=info):
                self._streams[info.stream_id] = info
                self._claim(info)
                self._emit(StreamStarted(info.stream_id, info.owner, info.codec))
            case StreamClosed(stream_id=stream_id):
                self._streams.pop(stream_id, None)
                for original, current in list(self._aliases.items()):
                    if current == stream_id:
                        self._aliases[original] = None  # closed by a moderator
                self._emit(StreamEnded(stream_id))
            case PollUpdated(poll=poll):
                if self._polls.get(poll.poll_id) != poll:  # a rejoin sends them all again
                    self._polls[poll.poll_id] = poll
                    self._emit(PollChanged(poll))
            case QuestionUpdated(question=question):
                if self._questions.get(question.question_id) != question:
                    self._questions[question.question_id] = question
                    self._emit(QuestionChanged(question))
            case RecordingChanged(state=state):
                self.recording = state
                self._emit(RecordingStateChanged(state))
            case UpstreamChanged(reachable=reachable):
                self.main_reachable = reachable
                self._emit(MainReachChanged(self.server or "", reachable))
            case MediaDropped(audio_frames=audio, video_frames=video, streams=streams):
                self._emit(MediaSkipped(audio, video, streams))
            case RequestKeyFrame(stream_id=stream_id):
                for original, current in self._aliases.items():
                    if current == stream_id:  # ours: named as open_stream gave it
                        self._emit(KeyFrameRequested(original))
            case Error(code=code, message=message):
                if code in (ErrorCode.UNAVAILABLE, ErrorCode.NOT_ALLOWED) and self._openers:
                    # Errors name no request: the oldest pending OpenStream is the likely one.
                    _, future = self._openers.popleft()
                    if not future.done():
                        future.set_exception(StreamRefused(f"{code.value}: {message}"))
                self._emit(RequestRefused(code, message))
            case _:
                pass  # Pong to the core's keepalive; nothing else reaches a participant

    def _claim(self, info: StreamInfo) -> None:
        """A stream of ours: the answer to a pending open, or a re-opened one after a rejoin."""
        if info.owner != self.name or info.stream_id in self._aliases.values():
            return
        for opener in self._openers:
            codec, future = opener
            if codec is info.codec and not future.done():
                self._openers.remove(opener)
                future.set_result(info.stream_id)
                return
        for original, current in self._aliases.items():
            if current is None and self._codecs.get(original) is info.codec:
                self._aliases[original] = info.stream_id
                return

    def _remember(self, key: tuple[str, int]) -> bool:
        if key in self._seen:
            return False
        self._seen.add(key)
        self._seen_order.append(key)
        if len(self._seen_order) > self._settings.seen_chat:
            self._seen.discard(self._seen_order.popleft())
        return True

    def _derive(self) -> None:
        holder = next((m.name for m in self._roster.values() if m.floor), None)
        raised = tuple(sorted(m.name for m in self._roster.values() if m.hand_raised))
        if holder != self._holder:
            self._holder = holder
            self._emit(FloorChanged(holder))
        if raised != self._raised:
            self._raised = raised
            self._emit(HandsChanged(raised))

    def _on_closed(self, closed: ConnectionClosed) -> None:
        self._link = None
        while self._openers:
            _, future = self._openers.popleft()
            if not future.done():
                future.set_exception(NotConnected("the connection ended"))
        final = closed.reason in _FINAL or (
            closed.reason is ByeReason.PROTOCOL_ERROR and closed.by_peer
        )
        if self._leaving or final:
            self._finish(Left(closed.reason, closed.message, closed.by_peer))
            return
        self._emit(ConnectionLost(self.server or "", closed.reason, closed.message))
        self._rejoin_task = asyncio.get_running_loop().create_task(self._rejoin())

    # -- delivering events ----------------------------------------------------------------

    def _emit(self, event: ClientEvent) -> None:
        if self._left is not None:
            return
        if self._on_event is not None:
            self._on_event(event)
            return
        if isinstance(event, MediaReceived):
            if self._queued_media >= self._settings.max_queued_media:
                return  # a reader that falls behind loses media, never the rest
            self._queued_media += 1
        self._queue.append(event)
        self._wake.set()

    def _finish(self, left: Left) -> Left:
        """End the session with ``left``, unless it has ended already; how it ended."""
        if self._left is None:
            self._emit(left)
            self._left = left
            self._done.set()
        return self._left
