"""The server-link messages: they round-trip, and only a server link carries them."""

from __future__ import annotations

import pytest

from tests.wire.wire_support import Pair, decode_frame
from townhall.wire import (
    Banned,
    ByeReason,
    ChatMark,
    ErrorCode,
    Evict,
    GiveFloor,
    LinkRequest,
    LocalProtocolError,
    MemberJoined,
    MemberLeft,
    Message,
    Refused,
    RemoteProtocolError,
    Resync,
    Role,
    RosterDone,
    RosterReset,
    SendChat,
    Synced,
    encode_message,
)
from townhall.wire.frames import HEADER_SIZE
from townhall.wire.messages import decode_message

UP: list[Message] = [
    MemberJoined(
        name="bo", credential_id="abcdefgh12", role="moderator", server="dmz-1", joined_at=1.5
    ),
    MemberLeft(name="bo"),
    LinkRequest.of("bo", GiveFloor(name="cy")),
    Resync(last_seq=12),
]
DOWN: list[Message] = [
    ChatMark(seq=13),
    Synced(),
    RosterReset(),
    RosterDone(),
    Evict(name="cy", reason=ByeReason.REMOVED, message="removed by ana"),
    Refused(name="cy", code=ErrorCode.NOT_ALLOWED),
    Banned(credential_ids=("abcdefgh12",) * 64),
]


@pytest.mark.parametrize("message", UP + DOWN, ids=lambda m: type(m).__name__)
def test_a_link_message_round_trips(message: Message) -> None:
    assert decode_frame(encode_message(message).data) == message


@pytest.mark.parametrize("message", UP, ids=lambda m: type(m).__name__)
def test_a_child_sends_link_messages_up(message: Message) -> None:
    link = Pair()
    link.open(role=Role.SERVER_LINK, name="child-1")
    assert link.client_sends(message) == [message]
    with pytest.raises(LocalProtocolError):
        link.server.send(message)


@pytest.mark.parametrize("message", DOWN, ids=lambda m: type(m).__name__)
def test_a_parent_sends_link_messages_down(message: Message) -> None:
    link = Pair()
    link.open(role=Role.SERVER_LINK, name="child-1")
    assert link.server_sends(message) == [message]
    with pytest.raises(LocalProtocolError):
        link.client.send(message)


@pytest.mark.parametrize("message", UP + DOWN, ids=lambda m: type(m).__name__)
def test_a_participant_connection_never_carries_link_messages(message: Message) -> None:
    pair = Pair()
    pair.open()
    with pytest.raises(LocalProtocolError, match="on a participant connection"):
        pair.client.send(message)
    with pytest.raises(LocalProtocolError, match="on a participant connection"):
        pair.server.send(message)
    pair.server.receive_data(encode_message(message).data, 0.0)
    with pytest.raises(RemoteProtocolError, match="client may not send"):
        pair.server.next_event()


def test_a_forwarded_request_carries_a_checked_command() -> None:
    request = LinkRequest.of("bo", GiveFloor(name="cy"))
    assert request.command() == GiveFloor(name="cy")
    with pytest.raises(LocalProtocolError):
        LinkRequest.of("bo", SendChat(text="not a command"))
    forged = LinkRequest(name="bo", command_type=3, payload=b"\x91\xc4\x01x")  # an Auth
    with pytest.raises(LocalProtocolError):
        encode_message(forged)
    payload = encode_message(request).data[HEADER_SIZE:]
    bad = payload.replace(b"\x12", b"\x03")  # the command type byte: GiveFloor 18 -> Auth 3
    assert bad != payload
    with pytest.raises(RemoteProtocolError, match="not a forwarded command"):
        decode_message(LinkRequest, bad)
    garbled = LinkRequest(name="bo", command_type=18, payload=b"\xc1")
    with pytest.raises(LocalProtocolError):
        encode_message(garbled)


def test_banned_is_sent_in_bounded_chunks() -> None:
    with pytest.raises(LocalProtocolError):
        encode_message(Banned(credential_ids=("abcdefgh12",) * 65))
    with pytest.raises(LocalProtocolError):
        encode_message(Banned(credential_ids=()))
