"""The WebSocket door alone, sans-IO: a wsproto client and the door through memory.

What the TLS tests cannot easily make: a message split over several
WebSocket frames, a ping, the core's bytes of several frames in one write,
and the close code the wire's farewell picks.
"""

from __future__ import annotations

from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Pong,
    Request,
)

from townhall.live.websocket import CloseCode, WebSocketDoor
from townhall.wire import (
    AuthFailed,
    AuthFailure,
    Bye,
    ByeReason,
    Hello,
    Role,
    Welcome,
    encode_message,
)

ORIGIN = "https://center.test"
HELLO = encode_message(Hello(role=Role.PARTICIPANT, version=1, client="t/1")).data
WELCOME = encode_message(Welcome(version=1, server="main")).data


def opened() -> tuple[WebSocketDoor, WSConnection]:
    door = WebSocketDoor([ORIGIN])
    client = WSConnection(ConnectionType.CLIENT)
    request = client.send(
        Request(host="main.test", target="/live", extra_headers=[(b"origin", ORIGIN.encode())])
    )
    received = door.receive(request)
    assert received.upgraded and not received.finished
    client.receive_data(received.out)
    assert isinstance(next(client.events()), AcceptConnection)
    return door, client


def test_a_message_in_several_websocket_frames_is_one_wire_frame() -> None:
    door, client = opened()
    data = client.send(BytesMessage(data=HELLO[:5], message_finished=False))
    data += client.send(BytesMessage(data=HELLO[5:], message_finished=True))
    first, second = door.receive(data[:7]), door.receive(data[7:])  # and cut in the middle
    assert first.frames == b"" and second.frames == HELLO


def test_each_wire_frame_the_core_writes_is_one_message() -> None:
    door, client = opened()
    client.receive_data(door.send(WELCOME + WELCOME + HELLO))
    messages = [e.data for e in client.events() if isinstance(e, BytesMessage)]
    assert messages == [WELCOME, WELCOME, HELLO]


def test_a_ping_is_answered_and_is_no_frame() -> None:
    door, client = opened()
    received = door.receive(client.send(Ping(payload=b"hi")))
    assert received.frames == b"" and not received.finished
    client.receive_data(received.out)
    assert [e for e in client.events() if isinstance(e, Pong)] == [Pong(payload=b"hi")]


def test_the_wire_farewell_picks_the_close_code() -> None:
    cases = [
        (AuthFailed(reason=AuthFailure.EXPIRED), CloseCode.AUTH_FAILED),
        (Bye(reason=ByeReason.PROTOCOL_ERROR), CloseCode.POLICY_VIOLATION),
        (Bye(reason=ByeReason.SHUTDOWN), CloseCode.GOING_AWAY),
        (Bye(reason=ByeReason.REMOVED), CloseCode.NORMAL),
    ]
    for farewell, code in cases:
        door, client = opened()
        client.receive_data(door.send(encode_message(farewell).data) + door.close())
        closes = [e for e in client.events() if isinstance(e, CloseConnection)]
        assert [c.code for c in closes] == [code], farewell
        assert door.close() == b""  # once


def test_the_peer_closing_is_answered_and_ends_the_door() -> None:
    door, client = opened()
    received = door.receive(client.send(CloseConnection(code=1000)))
    assert received.finished and door.upgraded
    client.receive_data(received.out)
    assert any(isinstance(e, CloseConnection) for e in client.events())
    assert door.send(WELCOME) == b"" and door.close() == b""
