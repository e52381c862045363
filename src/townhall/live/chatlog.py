"""The chat log: entries numbered by the main server, the newest ``limit`` of them kept.

The main server numbers every chat message it accepts, 1, 2, 3… (or on from
the base its room was given: see ``RoomSettings.chat_seq_base``), in the
order it accepts them: that order is the one every participant sees. Every
server keeps a copy of the entries that reach it (a child sees public chat
and the private chat of its own members), to give a joining participant the
recent history and to replay to a child that lost its link what it missed.
Each entry keeps its encoded frame, so a replay costs no encoding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Container, Iterator
from dataclasses import dataclass

from townhall.wire import ChatPosted, EncodedMessage, LocalProtocolError

__all__ = ["ChatLog", "Entry"]


@dataclass(frozen=True, slots=True)
class Entry:
    seq: int
    posted: ChatPosted
    encoded: EncodedMessage

    def visible_to(self, names: Container[str]) -> bool:
        """Public, or private with its sender or recipient among ``names``."""
        posted = self.posted
        return posted.to is None or posted.sender in names or posted.to in names


class ChatLog:
    def __init__(self, limit: int, *, last_seq: int = 0) -> None:
        """``last_seq``: the number before the first entry (the main server's base)."""
        if limit < 1 or last_seq < 0:
            raise ValueError("the chat log keeps at least one entry, numbered from 1 up")
        self._entries: deque[Entry] = deque(maxlen=limit)
        self._last_seq = last_seq

    @property
    def last_seq(self) -> int:
        """The highest number seen, 0 if none (kept even when its entry is gone)."""
        return self._last_seq

    def append(self, entry: Entry) -> None:
        if entry.seq <= self._last_seq:
            raise LocalProtocolError(f"chat entry {entry.seq} after {self._last_seq}")
        self._entries.append(entry)
        self._last_seq = entry.seq

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._entries)

    def recent(
        self, names: Container[str], *, after: int = 0, count: int, budget: int
    ) -> list[Entry]:
        """The newest entries numbered past ``after`` that ``names`` may see, oldest first.

        At most ``count`` of them and ``budget`` bytes of frames: a joiner or a
        child that was away long gets the most recent part of what it missed,
        not a queue that would overflow its connection.
        """
        picked: list[Entry] = []
        size = 0
        for entry in reversed(self._entries):
            if entry.seq <= after or len(picked) >= count:
                break
            if not entry.visible_to(names):
                continue
            size += len(entry.encoded.data)
            if size > budget:
                break
            picked.append(entry)
        picked.reverse()
        return picked
