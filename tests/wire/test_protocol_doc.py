"""docs/protocol.md says what the code does: its tables and its sample session are checked."""

from __future__ import annotations

import re
from pathlib import Path

from tests.wire.wire_support import Pair, decode_frame, drain
from townhall.wire import MAX_PAYLOAD, ByeReason, Channel, ConnectionClosed, MediaFrame
from townhall.wire.messages import MESSAGE_TYPES
from townhall.wire.states import OPEN_TRAFFIC, TRANSITIONS, Kind

DOC = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()


def name(kind: Kind) -> str:
    return kind.name if isinstance(kind, Channel) else kind.__name__


def section(title: str) -> str:
    start = DOC.index(f"\n## {title}\n")
    end = DOC.find("\n## ", start + 1)
    return DOC[start : end if end != -1 else len(DOC)]


def test_the_doc_lists_every_message_with_its_channel_type_and_fields_in_order() -> None:
    for (channel, type_), message_type in MESSAGE_TYPES.items():
        fields = ", ".join(message_type.__struct_fields__) or "—"
        row = f"| {channel.name} | {type_} | `{message_type.__name__}` | {fields} |"
        assert row in DOC, row


def test_the_doc_gives_each_channel_its_number_and_limit() -> None:
    for channel, limit in MAX_PAYLOAD.items():
        assert f"| {channel.name} | {channel.value} | {limit // 1024} KiB |" in DOC


def test_the_doc_transition_table_is_the_code_transition_table() -> None:
    rows = {
        f"| {state.name} | {side.value} | {name(kind)} | {following.name} |"
        for (state, side, kind), following in TRANSITIONS.items()
    }
    in_doc = {
        line
        for line in section("States").splitlines()
        if re.fullmatch(r"\| [A-Z_]+ \| (client|server) \| \w+ \| [A-Z_]+ \|", line)
    }
    assert in_doc == rows


def test_the_doc_open_traffic_table_is_the_code_table() -> None:
    for (role, side), kinds in OPEN_TRAFFIC.items():
        listed = ", ".join(sorted(name(kind) for kind in kinds)) or "—"
        row = f"| {role.value} | {side.value} | {listed} |"
        assert row in DOC, row


def sample_session() -> list[tuple[str, bytes]]:
    block = section("Sample session").split("```\n")[1]
    frames: list[tuple[str, bytearray]] = []
    for line in block.splitlines():
        if line[:2] in ("> ", "< "):
            frames.append((line[0], bytearray()))
        else:
            frames[-1][1].extend(bytes.fromhex(line.replace("|", "")))
    return [(direction, bytes(data)) for direction, data in frames]


def test_the_sample_session_is_what_real_connections_send_and_accept() -> None:
    pair = Pair()
    frames = sample_session()
    assert len(frames) == 17
    for direction, data in frames:
        sender, receiver = (
            (pair.client, pair.server) if direction == ">" else (pair.server, pair.client)
        )
        item = decode_frame(data)
        if isinstance(item, MediaFrame):
            assert sender.send(item) is item.data
        else:
            assert sender.send(item) == data  # the sender encodes these very bytes
        receiver.receive_data(data, pair.now)
        assert drain(receiver)[0] == item
    assert pair.client.next_event() == ConnectionClosed(ByeReason.NORMAL, "left", by_peer=False)
    assert pair.server.next_event() == ConnectionClosed(ByeReason.NORMAL, "left", by_peer=True)
