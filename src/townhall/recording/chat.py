"""``ChatTrack``: the event's public chat as a WebVTT file (W3C WebVTT), one cue a message.

Each message becomes a cue from the moment it arrived (on the recording's
timeline) for ``CUE_SECONDS``, spoken by its sender (``<v sender>``), with
``&``, ``<`` and ``>`` escaped so a message cannot open tags of its own and a
line holding ``-->`` cannot end a cue early. Every cue is flushed as it is
written, so a recorder killed mid-event leaves every message it had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final, TextIO

__all__ = ["CUE_SECONDS", "ChatTrack", "timestamp"]

CUE_SECONDS: Final = 5.0


def timestamp(seconds: float) -> str:
    """``hh:mm:ss.ttt`` as WebVTT writes it."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}"


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class ChatTrack:
    """Appends cues to ``path`` (created with the WebVTT header)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: TextIO = path.open("w", encoding="utf-8", newline="\n")
        self._file.write("WEBVTT\n\n")
        self._file.flush()
        self.cues = 0

    def add(self, at_seconds: float, sender: str, text: str) -> None:
        lines = [line for line in _escape(text).replace("\r", "\n").split("\n") if line.strip()]
        if not lines:
            return
        self.cues += 1
        start, end = timestamp(at_seconds), timestamp(at_seconds + CUE_SECONDS)
        body = "\n".join(lines)
        self._file.write(f"{self.cues}\n{start} --> {end}\n<v {_escape(sender)}>{body}\n\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
