"""``Lateness``: how late each audio stream's frames reach this server, to drop stale ones.

The Outbox drops media that waited too long for a slow *listener*; this is
the same rule at the door, for media that arrives late: a speaker behind a
stalled network, or a server too busy to read its sockets for a while,
hands over a burst of frames that are all old by the time they are read.
Relayed, they would only make every listener late. Each frame carries its
capture time in the sender's clock (``MediaFrame.timestamp_us``); the
difference between the time we read it and that capture time is the
stream's transit plus an unknown clock offset, and its smallest value over
the last ``window`` seconds is the stream's best case. A frame read more
than the room's limit (half of ``max_media_age``) after its best case is
late. The best case is a minimum of the last two windows, so that a drift
between the clocks moves it along instead of adding up. Sans-IO: the caller gives the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

__all__ = ["Lateness"]

_MAX_STREAMS: Final = 4096  # streams tracked at once; past it the oldest are forgotten


@dataclass(slots=True)
class _Stream:
    current: float  # smallest offset seen in this window
    previous: float  # and in the one before
    window_start: float


class Lateness:
    """Per stream: how far behind its best case a frame arrives (seconds)."""

    def __init__(self, window: float = 5.0) -> None:
        if not window > 0:
            raise ValueError("need window > 0")
        self._window = window
        self._streams: dict[int, _Stream] = {}

    def late_by(self, stream_id: int, timestamp_us: int, now: float) -> float:
        """How much later than its stream's best case this frame arrives (0 or more)."""
        offset = now - timestamp_us / 1_000_000
        stream = self._streams.get(stream_id)
        if stream is None:
            if len(self._streams) >= _MAX_STREAMS:
                del self._streams[next(iter(self._streams))]
            self._streams[stream_id] = _Stream(offset, offset, now)
            return 0.0
        if now - stream.window_start >= self._window:
            stream.previous, stream.current, stream.window_start = stream.current, offset, now
        elif offset < stream.current:
            stream.current = offset
        return max(0.0, offset - min(stream.current, stream.previous))

    def forget(self, stream_id: int) -> None:
        """The stream is closed: its history goes with it."""
        self._streams.pop(stream_id, None)
