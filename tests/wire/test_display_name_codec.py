"""Display names on the wire: optional, bounded, and free of characters that disguise a name.

``Member``, ``MemberJoined``, ``AuthOk`` and ``ChatPosted`` carry what people see of a
member beside its name (its identity). A peer that sends none (an older one) still
decodes, and what it sent is shown by name; a peer that sends one too long or with
control or bidirectional characters is refused, naming the field.
"""

from __future__ import annotations

import msgspec
import pytest

from tests.wire.wire_support import Pair, decode_frame
from townhall.wire import (
    AuthOk,
    Bye,
    ByeReason,
    ChatPosted,
    ConnectionClosed,
    Member,
    MemberJoined,
    Message,
    RemoteProtocolError,
    Role,
    RosterUpdate,
    encode_message,
)
from townhall.wire.errors import LocalProtocolError
from townhall.wire.frames import pack_frame
from townhall.wire.messages import DISPLAY_NAME_MAX, address_of, decode_message


def raw(*fields: object) -> bytes:
    return msgspec.msgpack.encode(list(fields))


WITH_NAMES: list[Message] = [
    RosterUpdate(changed=(Member(name="guest-k3j9x2ab", display_name="Alice"),)),
    RosterUpdate(changed=(Member(name="bo", moderator=True, display_name="Bo <b>Ö</b> 李"),)),
    AuthOk(name="guest-k3j9x2ab", event="ev-1", display_name="Alice"),
    ChatPosted(sender="guest-k3j9x2ab", text="hi", seq=3, sender_display_name="Alice"),
    MemberJoined(
        name="guest-k3j9x2ab",
        credential_id="cred-0001",
        role="participant",
        server="child-1",
        joined_at=1.5,
        display_name="A" * DISPLAY_NAME_MAX,
    ),
]


@pytest.mark.parametrize("message", WITH_NAMES, ids=lambda m: type(m).__name__)
def test_a_display_name_travels_and_comes_back_the_same(message: Message) -> None:
    assert decode_frame(encode_message(message).data) == message


def test_a_roster_from_an_older_peer_without_display_names_shows_names() -> None:
    old = decode_message(RosterUpdate, raw([["ana", True, False, False, False]], []))
    assert isinstance(old, RosterUpdate)
    (member,) = old.changed
    assert member.display_name == ""
    assert member.shown == "ana"


def test_older_peers_messages_without_the_field_still_decode() -> None:
    joined = decode_message(MemberJoined, raw("ana", "cred-0001", "moderator", "main", 2.0))
    assert isinstance(joined, MemberJoined) and joined.display_name == ""
    posted = decode_message(ChatPosted, raw("ana", "hello", None, 1))
    assert isinstance(posted, ChatPosted) and posted.shown_sender == "ana"
    ok = decode_message(AuthOk, raw("ana", "ev-1", False))
    assert isinstance(ok, AuthOk) and ok.display_name == ""


TOO_LONG = "x" * (DISPLAY_NAME_MAX + 1)
BAD = [
    pytest.param(
        RosterUpdate,
        raw([["a", False, False, False, False, TOO_LONG]], []),
        "changed",
        id="roster-too-long",
    ),
    pytest.param(
        RosterUpdate,
        raw([["a", False, False, False, False, "Al\nice"]], []),
        "changed",
        id="roster-newline",
    ),
    pytest.param(
        RosterUpdate,
        raw([["a", False, False, False, False, 7]], []),
        "changed",
        id="roster-not-a-string",
    ),
    pytest.param(
        MemberJoined,
        raw("a", "cred-0001", "participant", "c", 1.0, TOO_LONG),
        "display_name",
        id="joined-too-long",
    ),
    pytest.param(
        MemberJoined,
        raw("a", "cred-0001", "participant", "c", 1.0, "\u202eecilA"),
        "display_name",
        id="joined-bidi-override",
    ),
    pytest.param(
        MemberJoined,
        raw("a", "cred-0001", "participant", "c", 1.0, "A\x00"),
        "display_name",
        id="joined-nul",
    ),
    pytest.param(
        ChatPosted, raw("a", "hi", None, 1, "Bell\x07"), "sender_display_name", id="chat-bell"
    ),
    pytest.param(
        ChatPosted,
        raw("a", "hi", None, 1, "\x85next line"),
        "sender_display_name",
        id="chat-c1-control",
    ),
    pytest.param(AuthOk, raw("a", "ev", False, TOO_LONG), "display_name", id="auth-ok-too-long"),
]


@pytest.mark.parametrize(("message_type", "payload", "field"), BAD)
def test_a_display_name_too_long_or_with_controls_is_refused_naming_the_field(
    message_type: type[Message], payload: bytes, field: str
) -> None:
    with pytest.raises(RemoteProtocolError, match=f"^bad {message_type.__name__}.{field}") as bad:
        decode_message(message_type, payload)
    assert bad.value.field == field


def test_we_never_send_a_display_name_the_peer_would_refuse() -> None:
    with pytest.raises(LocalProtocolError, match="display_name"):
        encode_message(AuthOk(name="a", display_name="x" * (DISPLAY_NAME_MAX + 1)))
    with pytest.raises(LocalProtocolError, match="sender_display_name"):
        encode_message(ChatPosted(sender="a", text="hi", sender_display_name="tab\there"))


def test_a_child_sending_a_bad_display_name_up_gets_a_bye_saying_so_after_its_good_joins() -> None:
    link = Pair()
    link.open(role=Role.SERVER_LINK, name="child-1")
    good = MemberJoined(
        name="guest-1",
        credential_id="cred-0001",
        role="participant",
        server="child-1",
        joined_at=1.0,
        display_name="Alice",
    )
    assert link.client_sends(good) == [good]
    channel, type_ = address_of(MemberJoined)
    bad = raw("guest-2", "cred-0002", "participant", "child-1", 2.0, TOO_LONG)
    link.server.receive_data(pack_frame(channel, type_, bad), link.now)
    with pytest.raises(RemoteProtocolError, match="bad MemberJoined.display_name") as caught:
        link.server.next_event()
    bye = Bye.for_error(caught.value)
    assert "length <= 200" in bye.message  # the peer is told what was wrong
    client_saw = link.deliver(link.client, link.server.send(bye))
    assert client_saw == [bye, ConnectionClosed(ByeReason.PROTOCOL_ERROR, bye.message, True)]
