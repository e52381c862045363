"""Per-connection send queues, bounded in bytes and media age: media is dropped, control and
chat never are.

The asyncio shell pushes every frame the room sends into the ``Outbox`` and,
once per event-loop pass, writes ``drain(conn)`` for each connection in
``ready()`` whose transport is not paused: one combined write per listener
per pass, whatever the number of frames (DESIGN.md, "The live protocol":
this is what keeps fan-out near 1 µs a delivery). A listener that cannot keep
up stops being drained (its transport pauses), its queue grows, and then:

- a media frame that would take the queue past ``media_limit`` is dropped
  and counted; after a dropped VIDEO frame, that stream's frames are dropped
  until its next keyframe fits, since VP8 deltas without their reference are
  useless; ``take_keyframe_holds`` tells which streams started such a wait,
  so that the room asks their owners for a key frame at once;
- a media frame queued longer than ``max_media_age`` seconds (``[live]
  max_media_age_ms``) is dropped and counted when the queue is next pushed
  media or drained, if it already missed a write: late audio is worse than
  none (issue 14), so a listener that falls behind hears the present, not
  seconds of backlog. Only a frame that was queued when a pass ended
  (``ready``) and stayed (its connection paused) can be dropped so: when the
  server itself is slow, a long pass makes every frame of it "old" by the
  drain, and dropping them would punish every listener for the server's load;
- every drop is also counted per stream until the dispatcher takes them
  (``dropping``, ``take_drops``) to tell the participant (``MediaDropped``);
- a control or chat frame is always queued; if it would take the queue past
  ``limit``, the queued media is thrown away first, and if that is not
  enough, ``push`` answers False: the connection is too slow and must be
  closed. Memory per connection never exceeds ``limit``.

A server link carries the traffic of a whole subtree, so ``mark_link`` gives
it larger limits (``link_media_limit``, ``link_limit``).

Pure bookkeeping: no sockets, and the clock is an argument (``now``, seconds on
the caller's monotonic clock). Knows ``MediaFrame`` and nothing of
rooms or messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

from townhall.wire import Channel, MediaFrame

__all__ = ["Drops", "Outbox", "QueueStats"]

_NEVER = float("inf")  # ``oldest_media`` of a queue that holds no media
# (data, its media channel or None for control and chat, stream id, when queued, in which pass)
_Chunk = tuple[bytes, Channel | None, int, float, int]


@dataclass(slots=True)
class QueueStats:
    """What happened to one connection's queue: counters for metrics and tests."""

    queued_bytes: int = 0
    dropped_frames: int = 0  # media dropped for any reason (bytes or age)
    dropped_bytes: int = 0
    dropped_late_frames: int = 0  # of those, media older than ``max_media_age``
    peak_bytes: int = 0
    delivered_frames: int = 0  # frames handed to the connection by ``drain``: deliveries
    sent_bytes: int = 0  # bytes handed to the connection by ``drain``
    # Writes holding media, and the seconds their oldest media frame had waited in all:
    # the delay this hop adds, on average (the metrics' hop delay).
    media_writes: int = 0
    media_wait_seconds: float = 0.0

    def add(self, other: QueueStats) -> None:
        """Add ``other``'s counts to these (``queued_bytes`` and ``peak_bytes`` too)."""
        self.queued_bytes += other.queued_bytes
        self.dropped_frames += other.dropped_frames
        self.dropped_bytes += other.dropped_bytes
        self.dropped_late_frames += other.dropped_late_frames
        self.peak_bytes = max(self.peak_bytes, other.peak_bytes)
        self.delivered_frames += other.delivered_frames
        self.sent_bytes += other.sent_bytes
        self.media_writes += other.media_writes
        self.media_wait_seconds += other.media_wait_seconds


@dataclass(slots=True)
class Drops:
    """Media frames dropped for one connection since they were last taken, by stream."""

    audio_frames: int = 0
    video_frames: int = 0
    streams: dict[int, int] = field(default_factory=dict)  # stream id -> frames


@dataclass(slots=True)
class _Queue:
    conn: Hashable
    chunks: deque[_Chunk] = field(default_factory=deque)
    size: int = 0
    media: int = 0  # bytes of media in ``chunks``
    oldest_media: float = _NEVER  # when the oldest media in ``chunks`` was queued
    awaiting_keyframe: set[int] = field(default_factory=set)  # VIDEO stream ids
    limits: tuple[int, int] = (0, 0)  # media limit, limit
    stats: QueueStats = field(default_factory=QueueStats)
    drops: Drops | None = None  # not yet taken by ``take_drops``


class Outbox:
    """Bounded byte queues, one per connection."""

    def __init__(
        self,
        *,
        media_limit: int = 512 * 1024,
        limit: int = 8 * 1024 * 1024,
        link_media_limit: int = 4 * 1024 * 1024,
        link_limit: int = 64 * 1024 * 1024,
        max_media_age: float = 0.3,
    ) -> None:
        if not (0 < media_limit <= limit and 0 < link_media_limit <= link_limit):
            raise ValueError("need 0 < media_limit <= limit, and the same for links")
        if not max_media_age > 0:
            raise ValueError("need max_media_age > 0")
        self._max_media_age = max_media_age
        self._pass = 0  # passes ended (``ready`` calls): a frame's age counts from a missed one
        self._limits = (media_limit, limit)
        self._link_limits = (link_media_limit, link_limit)
        self._queues: dict[Hashable, _Queue] = {}
        self._holds: set[int] = set()  # VIDEO streams some queue began waiting a keyframe of
        self._dropping: dict[Hashable, None] = {}  # connections whose ``drops`` wait, in order
        self._gone = QueueStats()  # the counts of discarded queues

    def mark_link(self, conn: Hashable) -> None:
        """``conn`` is a server link: it carries a whole subtree, so it gets the link limits."""
        self._queue(conn).limits = self._link_limits

    def push(self, conn: Hashable, data: bytes) -> bool:
        """Queue control or chat bytes; False if ``conn`` is too slow (close it)."""
        queue = self._queue(conn)
        limit = queue.limits[1]
        if queue.size + len(data) > limit and queue.media:
            self._drop_queued_media(queue)
        if queue.size + len(data) > limit:
            return False
        queue.chunks.append((data, None, 0, 0.0, 0))  # never late
        self._grew(queue, len(data))
        return True

    def push_media(self, conn: Hashable, frame: MediaFrame, now: float) -> bool:
        """Queue a media frame's bytes, or drop them (False) if ``conn`` is behind."""
        queue = self._queue(conn)
        if now - queue.oldest_media > self._max_media_age:
            self._drop_late_media(queue, now, self._pass)
        data = frame.data
        video = frame.channel is Channel.VIDEO
        if video and frame.stream_id in queue.awaiting_keyframe and not frame.keyframe:
            self._count_drop(queue, len(data), frame.channel, frame.stream_id)
            return False
        if queue.size + len(data) > queue.limits[0]:
            if video:
                self._hold(queue, frame.stream_id, again=frame.keyframe)
            self._count_drop(queue, len(data), frame.channel, frame.stream_id)
            return False
        if video:
            queue.awaiting_keyframe.discard(frame.stream_id)
        queue.chunks.append((data, frame.channel, frame.stream_id, now, self._pass))
        if not queue.media:
            queue.oldest_media = now
        queue.media += len(data)
        self._grew(queue, len(data))
        return True

    def push_media_to(self, conns: Iterable[Hashable], frame: MediaFrame, now: float) -> None:
        """``push_media`` for each of ``conns``: the fan-out of one frame.

        A frame goes to every listener of a server, so this is the server's
        hottest loop: an audio frame that fits a queue holding no late media
        is queued inline, as one chunk shared by every queue; anything else
        (video, a new, full or late queue) takes ``push_media``.
        """
        if frame.channel is Channel.VIDEO:
            for conn in conns:
                self.push_media(conn, frame, now)
            return
        size = len(frame.data)
        chunk: _Chunk = (frame.data, frame.channel, frame.stream_id, now, self._pass)
        queues, max_age = self._queues, self._max_media_age
        for conn in conns:
            queue = queues.get(conn)
            if (
                queue is None
                or now - queue.oldest_media > max_age
                or queue.size + size > queue.limits[0]
            ):
                self.push_media(conn, frame, now)
                continue
            queue.chunks.append(chunk)
            if not queue.media:
                queue.oldest_media = now
            queue.media += size
            queued = queue.size = queue.size + size
            stats = queue.stats
            stats.queued_bytes = queued
            if queued > stats.peak_bytes:
                stats.peak_bytes = queued

    def drain(self, conn: Hashable, now: float) -> bytes:
        """Everything queued for ``conn`` but late media, as one write; b"" if nothing."""
        return self.drain_each((conn,), now)[0]

    def drain_each(self, conns: Iterable[Hashable], now: float) -> list[bytes]:
        """``drain`` for each of ``conns``, in their order: the pass's writes, in one loop."""
        queues, max_age, written = self._queues, self._max_media_age, []
        for conn in conns:
            queue = queues.get(conn)
            if queue is None or not queue.chunks:
                written.append(b"")
                continue
            if now - queue.oldest_media > max_age:
                # What ``ready`` just offered is this pass's: late only if it waited a pass more.
                self._drop_late_media(queue, now, self._pass - 1)
            chunks = queue.chunks
            count = len(chunks)
            if count == 1:
                data = chunks[0][0]
            else:
                data = b"".join([chunk[0] for chunk in chunks]) if count else b""
            chunks.clear()
            stats = queue.stats
            stats.delivered_frames += count
            stats.sent_bytes += len(data)
            if queue.media:
                stats.media_writes += 1
                stats.media_wait_seconds += now - queue.oldest_media
            queue.size = queue.media = stats.queued_bytes = 0
            queue.oldest_media = _NEVER
            written.append(data)
        return written

    def ready(self) -> list[Hashable]:
        """The connections with bytes waiting, in no promised order. The shell calls it
        once a pass, then drains those it can write to: what it leaves waited a pass."""
        self._pass += 1
        return [conn for conn, queue in self._queues.items() if queue.chunks]

    def pending(self, conn: Hashable) -> int:
        queue = self._queues.get(conn)
        return 0 if queue is None else queue.size

    def stats(self, conn: Hashable) -> QueueStats:
        queue = self._queues.get(conn)
        return QueueStats() if queue is None else queue.stats

    def has_drops(self) -> bool:
        """Whether some connection has drops not yet taken: cheap, for every pass."""
        return bool(self._dropping)

    def dropping(self) -> list[Hashable]:
        """The connections with drops not yet taken, in the order they began dropping."""
        return list(self._dropping)

    def take_drops(self, conn: Hashable) -> Drops | None:
        """What was dropped for ``conn`` since the last call; None if nothing."""
        self._dropping.pop(conn, None)
        queue = self._queues.get(conn)
        if queue is None or queue.drops is None:
            return None
        drops, queue.drops = queue.drops, None
        return drops

    def totals(self) -> QueueStats:
        """Every queue's counts added up, those of discarded queues included (metrics)."""
        total = QueueStats()
        total.add(self._gone)
        total.queued_bytes = 0
        for queue in self._queues.values():
            total.add(queue.stats)
        return total

    def oldest_media_age(self, now: float) -> float:
        """Seconds the oldest media frame still queued for anyone has waited; 0 if none."""
        oldest = min((queue.oldest_media for queue in self._queues.values()), default=_NEVER)
        return 0.0 if oldest == _NEVER else max(0.0, now - oldest)

    def take_keyframe_holds(self) -> set[int]:
        """The VIDEO streams whose frames some queue began dropping until a keyframe, since
        the last call: the room asks their owners for one (``KeyFramesWanted``)."""
        holds = self._holds
        if not holds:
            return holds  # the usual case, once per event: no new set
        self._holds = set()
        return holds

    def discard(self, conn: Hashable) -> None:
        """Forget ``conn`` and whatever it still had queued."""
        queue = self._queues.pop(conn, None)
        self._dropping.pop(conn, None)
        if queue is not None:
            self._gone.add(queue.stats)

    # -- helpers ---------------------------------------------------------------------

    def _queue(self, conn: Hashable) -> _Queue:
        queue = self._queues.get(conn)
        if queue is None:
            queue = self._queues[conn] = _Queue(conn, limits=self._limits)
        return queue

    def _hold(self, queue: _Queue, stream_id: int, *, again: bool = False) -> None:
        """Drop ``stream_id`` here until a keyframe; ask for one when the wait begins, and
        ``again`` when the keyframe it waited for did not fit either."""
        if again or stream_id not in queue.awaiting_keyframe:
            queue.awaiting_keyframe.add(stream_id)
            self._holds.add(stream_id)

    @staticmethod
    def _grew(queue: _Queue, size: int) -> None:
        queue.size += size
        queue.stats.queued_bytes = queue.size
        queue.stats.peak_bytes = max(queue.stats.peak_bytes, queue.size)

    def _count_drop(self, queue: _Queue, size: int, channel: Channel, stream_id: int) -> None:
        queue.stats.dropped_frames += 1
        queue.stats.dropped_bytes += size
        drops = queue.drops
        if drops is None:
            drops = queue.drops = Drops()
            self._dropping[queue.conn] = None
        if channel is Channel.VIDEO:
            drops.video_frames += 1
        else:
            drops.audio_frames += 1
        drops.streams[stream_id] = drops.streams.get(stream_id, 0) + 1

    def _drop_late_media(self, queue: _Queue, now: float, before_pass: int) -> None:
        """Drop the media queued more than ``max_media_age`` ago in a pass before
        ``before_pass``. Chunks are in the order queued, so only the front is walked: up
        to the first media that is not late."""
        deadline = now - self._max_media_age
        chunks = queue.chunks
        kept: list[_Chunk] = []
        queue.oldest_media = _NEVER
        while chunks:
            chunk = chunks[0]
            data, channel, stream_id, queued_at, queued_in = chunk
            if channel is not None and (queued_at >= deadline or queued_in >= before_pass):
                queue.oldest_media = queued_at
                break
            chunks.popleft()
            if channel is None:
                kept.append(chunk)
                continue
            self._count_drop(queue, len(data), channel, stream_id)
            queue.stats.dropped_late_frames += 1
            queue.size -= len(data)
            queue.media -= len(data)
            if channel is Channel.VIDEO:
                self._hold(queue, stream_id)
        chunks.extendleft(reversed(kept))
        queue.stats.queued_bytes = queue.size

    def _drop_queued_media(self, queue: _Queue) -> None:
        kept: deque[_Chunk] = deque()
        queue.oldest_media = _NEVER
        for chunk in queue.chunks:
            data, channel, stream_id, _, _ = chunk
            if channel is None:
                kept.append(chunk)
                continue
            self._count_drop(queue, len(data), channel, stream_id)
            if channel is Channel.VIDEO:
                self._hold(queue, stream_id)
        queue.chunks = kept
        queue.size -= queue.media
        queue.media = 0
        queue.stats.queued_bytes = queue.size
