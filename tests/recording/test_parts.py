"""Parts: a recorder never overwrites what an earlier (or a concurrent) recorder wrote.

Real files in a temporary folder. Each run claims the next number after the
highest part there, by creating its file exclusively; part 1 keeps the names
of a recording in one part; a file that only looks like a part is not one;
and a recorder stopped before it joined leaves nothing behind.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.recording.test_service import ticket
from townhall.client.session import JoinFailed
from townhall.recording.recorder import MAX_PARTS, claim_part, folder_for, part_names, record


def test_each_claim_takes_the_next_part_and_keeps_the_others(tmp_path: Path) -> None:
    first = claim_part(tmp_path)
    (tmp_path / first.media).write_bytes(b"part one")
    second = claim_part(tmp_path)
    third = claim_part(tmp_path)
    assert (first.media, first.chat, first.summary) == (
        "recording.webm", "chat.vtt", "recording.json"
    )  # fmt: skip
    assert (second.media, second.chat, second.summary) == (
        "recording-2.webm", "chat-2.vtt", "recording-2.json"
    )  # fmt: skip
    assert third.media == "recording-3.webm"
    assert (tmp_path / "recording.webm").read_bytes() == b"part one"


def test_a_gap_or_a_stray_file_never_leads_to_an_overwrite(tmp_path: Path) -> None:
    for name in ("recording-5.webm", "recording-07.webm", "recording-9.webm.part", "x.webm"):
        (tmp_path / name).write_bytes(b"kept")
    assert claim_part(tmp_path).number == 6
    assert all((tmp_path / n).read_bytes() == b"kept" for n in ("recording-5.webm", "x.webm"))


def test_past_the_last_part_nothing_is_claimed(tmp_path: Path) -> None:
    (tmp_path / f"recording-{MAX_PARTS}.webm").write_bytes(b"last")
    with pytest.raises(ValueError, match="numbered 1 to"):
        claim_part(tmp_path)
    with pytest.raises(ValueError):
        part_names(0)


async def test_a_recorder_stopped_before_it_joined_leaves_no_part(tmp_path: Path) -> None:
    stop = asyncio.Event()
    stop.set()
    with pytest.raises(JoinFailed):
        await record(ticket(4, 1), tmp_path, stop=stop)
    assert list(folder_for(tmp_path, 4).iterdir()) == []


def test_mp4_and_webm_parts_share_one_numbering(tmp_path: Path) -> None:
    first = claim_part(tmp_path, "mp4")
    assert (first.media, first.chat, first.summary) == (
        "recording.mp4", "chat.vtt", "recording.json"
    )  # fmt: skip
    second = claim_part(tmp_path, "webm")
    assert second.media == "recording-2.webm"
    (tmp_path / "chat-4.vtt").write_text("WEBVTT\n\n")  # a part being claimed: its chat first
    assert claim_part(tmp_path, "mp4").media == "recording-5.mp4"
    assert (tmp_path / "chat-4.vtt").read_text() == "WEBVTT\n\n"
    with pytest.raises(ValueError, match="one of"):
        part_names(6, "mkv")
