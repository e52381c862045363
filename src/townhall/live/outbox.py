"""Per-connection send queues, bounded in bytes: media is dropped, control and chat never are.

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
- a control or chat frame is always queued; if it would take the queue past
  ``limit``, the queued media is thrown away first, and if that is not
  enough, ``push`` answers False: the connection is too slow and must be
  closed. Memory per connection never exceeds ``limit``.

A server link carries the traffic of a whole subtree, so ``mark_link`` gives
it larger limits (``link_media_limit``, ``link_limit``).

Pure bookkeeping: no sockets, no clock. Knows ``MediaFrame`` and nothing of
rooms or messages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

from townhall.wire import Channel, MediaFrame

__all__ = ["Outbox", "QueueStats"]


@dataclass(slots=True)
class QueueStats:
    """What happened to one connection's queue: counters for metrics and tests."""

    queued_bytes: int = 0
    dropped_frames: int = 0
    dropped_bytes: int = 0
    peak_bytes: int = 0


@dataclass(slots=True)
class _Queue:
    # (data, is media, the VIDEO stream id or None)
    chunks: deque[tuple[bytes, bool, int | None]] = field(default_factory=deque)
    size: int = 0
    media: int = 0  # bytes of media in ``chunks``
    awaiting_keyframe: set[int] = field(default_factory=set)  # VIDEO stream ids
    limits: tuple[int, int] = (0, 0)  # media limit, limit
    stats: QueueStats = field(default_factory=QueueStats)


class Outbox:
    """Bounded byte queues, one per connection."""

    def __init__(
        self,
        *,
        media_limit: int = 512 * 1024,
        limit: int = 8 * 1024 * 1024,
        link_media_limit: int = 4 * 1024 * 1024,
        link_limit: int = 64 * 1024 * 1024,
    ) -> None:
        if not (0 < media_limit <= limit and 0 < link_media_limit <= link_limit):
            raise ValueError("need 0 < media_limit <= limit, and the same for links")
        self._limits = (media_limit, limit)
        self._link_limits = (link_media_limit, link_limit)
        self._queues: dict[Hashable, _Queue] = {}
        self._holds: set[int] = set()  # VIDEO streams some queue began waiting a keyframe of

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
        queue.chunks.append((data, False, None))
        self._grew(queue, len(data))
        return True

    def push_media(self, conn: Hashable, frame: MediaFrame) -> bool:
        """Queue a media frame's bytes, or drop them (False) if ``conn`` is behind."""
        queue = self._queue(conn)
        data = frame.data
        video = frame.channel is Channel.VIDEO
        if video and frame.stream_id in queue.awaiting_keyframe and not frame.keyframe:
            self._count_drop(queue, len(data))
            return False
        if queue.size + len(data) > queue.limits[0]:
            if video:
                self._hold(queue, frame.stream_id, again=frame.keyframe)
            self._count_drop(queue, len(data))
            return False
        if video:
            queue.awaiting_keyframe.discard(frame.stream_id)
        queue.chunks.append((data, True, frame.stream_id if video else None))
        queue.media += len(data)
        self._grew(queue, len(data))
        return True

    def drain(self, conn: Hashable) -> bytes:
        """Everything queued for ``conn``, as one write; b"" if nothing."""
        queue = self._queues.get(conn)
        if queue is None or not queue.chunks:
            return b""
        chunks = queue.chunks
        data = chunks[0][0] if len(chunks) == 1 else b"".join(chunk for chunk, _, _ in chunks)
        chunks.clear()
        queue.size = queue.media = queue.stats.queued_bytes = 0
        return data

    def ready(self) -> list[Hashable]:
        """The connections with bytes waiting, in no promised order."""
        return [conn for conn, queue in self._queues.items() if queue.chunks]

    def pending(self, conn: Hashable) -> int:
        queue = self._queues.get(conn)
        return 0 if queue is None else queue.size

    def stats(self, conn: Hashable) -> QueueStats:
        queue = self._queues.get(conn)
        return QueueStats() if queue is None else queue.stats

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
        self._queues.pop(conn, None)

    # -- helpers ---------------------------------------------------------------------

    def _queue(self, conn: Hashable) -> _Queue:
        queue = self._queues.get(conn)
        if queue is None:
            queue = self._queues[conn] = _Queue(limits=self._limits)
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

    @staticmethod
    def _count_drop(queue: _Queue, size: int) -> None:
        queue.stats.dropped_frames += 1
        queue.stats.dropped_bytes += size

    def _drop_queued_media(self, queue: _Queue) -> None:
        kept: deque[tuple[bytes, bool, int | None]] = deque()
        for chunk in queue.chunks:
            data, media, video_stream = chunk
            if not media:
                kept.append(chunk)
                continue
            self._count_drop(queue, len(data))
            if video_stream is not None:
                self._hold(queue, video_stream)
        queue.chunks = kept
        queue.size -= queue.media
        queue.media = 0
        queue.stats.queued_bytes = queue.size
