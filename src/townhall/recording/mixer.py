"""``Mixer``: overlapping speakers' Opus streams mixed, as they arrive, into one 48 kHz track.

Sans-IO: the caller gives each relayed packet with the time it arrived
(``feed``), and asks for the mix up to a time (``pull``), always on the same
clock. A stream's samples are placed where its first packet arrived, then
packet after packet by sequence number: a gap is filled with silence (at most
``MAX_GAP_FRAMES``), a late or repeated packet is dropped, and a stream that
fell silent without closing (no packets, no gap in numbers) is placed again
where its packets arrive now. ``pull`` only mixes what is ``delay`` seconds
old, so the packets of every stream have had time to arrive (a jitter buffer
shared by all streams); what arrives later than that is dropped.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Final

import numpy as np

from townhall.client.audio import FRAME_SAMPLES, MAX_GAP_FRAMES, PCM, SAMPLE_RATE, OpusDecoder
from townhall.wire import seq_delta

__all__ = ["MAX_STREAMS", "Mixer"]

MAX_STREAMS: Final = 64  # as many as a StateSnapshot may announce
_RESYNC: Final = SAMPLE_RATE  # a stream this far behind its arrival time is placed again


@dataclass
class _Track:
    decoder: OpusDecoder
    next_pos: int  # sample of the mix where the next packet's samples go
    last_seq: int
    parts: deque[tuple[int, PCM]] = field(default_factory=deque)


class Mixer:
    """Mixes Opus streams on the timeline that starts at ``start`` (seconds, the caller's clock)."""

    def __init__(self, start: float, *, delay: float = 0.3) -> None:
        if delay < 0:
            raise ValueError("delay must not be negative")
        self._start = start
        self._delay = round(delay * SAMPLE_RATE)
        self._tracks: dict[int, _Track] = {}
        self.written = 0  # samples of the mix handed out by ``pull``
        self.dropped = 0  # packets that came too late or twice

    def _position(self, now: float) -> int:
        return max(0, round((now - self._start) * SAMPLE_RATE))

    def feed(self, stream_id: int, seq: int, payload: bytes, now: float) -> None:
        """One Opus packet of ``stream_id``, numbered ``seq``, arrived at ``now``."""
        arrived = self._position(now)
        track = self._tracks.get(stream_id)
        if track is None:
            if len(self._tracks) >= MAX_STREAMS:
                self.dropped += 1
                return
            track = _Track(OpusDecoder(), max(arrived, self.written), (seq - 1) & 0xFFFF_FFFF)
            self._tracks[stream_id] = track
        ahead = seq_delta(track.last_seq, seq)
        if ahead <= 0:
            self.dropped += 1
            return
        track.next_pos += min(ahead - 1, MAX_GAP_FRAMES) * FRAME_SAMPLES
        if arrived - track.next_pos > _RESYNC:
            track.next_pos = arrived
        track.last_seq = seq
        pcm = track.decoder.decode(payload)
        if track.next_pos + len(pcm) <= self.written:
            self.dropped += 1  # too late for the mix
            track.next_pos += len(pcm)
            return
        track.parts.append((track.next_pos, pcm))
        track.next_pos += len(pcm)

    def close(self, stream_id: int) -> None:
        """The stream ended; what it sent is still mixed."""
        track = self._tracks.get(stream_id)
        if track is not None and not track.parts:
            del self._tracks[stream_id]

    @property
    def streams(self) -> int:
        return len(self._tracks)

    def pull(self, now: float) -> PCM:
        """The mix from where the last pull ended up to ``delay`` before ``now``, in whole
        20 ms frames (possibly none)."""
        end = self._position(now) - self._delay
        end -= (end - self.written) % FRAME_SAMPLES if end > self.written else 0
        if end <= self.written:
            return np.zeros(0, dtype=np.int16)
        return self._mix_until(end)

    def drain(self) -> PCM:
        """Everything fed so far, to the end of the longest stream (at the end of recording)."""
        end = max((t.next_pos for t in self._tracks.values() if t.parts), default=self.written)
        end += (-(end - self.written)) % FRAME_SAMPLES
        if end <= self.written:
            return np.zeros(0, dtype=np.int16)
        return self._mix_until(end)

    def _mix_until(self, end: int) -> PCM:
        begin = self.written
        total = np.zeros(end - begin, dtype=np.int32)
        for stream_id, track in list(self._tracks.items()):
            parts = track.parts
            while parts:
                pos, pcm = parts[0]
                lo, hi = max(pos, begin), min(pos + len(pcm), end)
                if lo < hi:
                    total[lo - begin : hi - begin] += pcm[lo - pos : hi - pos]
                if pos + len(pcm) <= end:
                    parts.popleft()
                else:
                    break
            if not parts and track.next_pos <= begin - 10 * _RESYNC:
                del self._tracks[stream_id]  # long silent: its decoder is not worth keeping
        self.written = end
        return np.clip(total, -32768, 32767).astype(np.int16)
