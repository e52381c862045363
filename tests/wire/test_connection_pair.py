"""A real client Connection and a real server Connection, talking through memory."""

from __future__ import annotations

import struct

import pytest

from tests.wire.wire_support import Pair, drain
from townhall.wire import (
    MAX_PAYLOAD,
    NEED_DATA,
    Auth,
    AuthFailed,
    AuthFailure,
    AuthOk,
    Bye,
    ByeReason,
    Channel,
    ChatPosted,
    Connection,
    ConnectionClosed,
    Error,
    ErrorCode,
    GiveFloor,
    Hello,
    LocalProtocolError,
    MediaDropped,
    MediaFrame,
    Member,
    Message,
    Ping,
    Pong,
    RaiseHand,
    RemoteProtocolError,
    Role,
    RosterUpdate,
    SendChat,
    Settings,
    Side,
    SpeakingMode,
    State,
    StateSnapshot,
    Welcome,
    encode_message,
)
from townhall.wire.messages import Load

HELLO = Hello(role=Role.PARTICIPANT, version=1, client="tests/1")


def video(seq: int = 1, keyframe: bool = False) -> MediaFrame:
    return MediaFrame.build(
        Channel.VIDEO,
        stream_id=7,
        seq=seq,
        timestamp_us=1_000_000 + seq,
        payload=b"vp8 " * 10,
        keyframe=keyframe,
    )


# -- handshake ------------------------------------------------------------------


def test_handshake_opens_both_sides_with_the_agreed_version_and_role() -> None:
    pair = Pair()
    assert pair.client_sends(HELLO) == [HELLO]
    assert pair.server.state is State.AWAIT_WELCOME
    assert pair.server.role is Role.PARTICIPANT
    assert pair.server_sends(Welcome(version=1, server="main")) == [
        Welcome(version=1, server="main")
    ]
    assert pair.client_sends(Auth(ticket=b"t")) == [Auth(ticket=b"t")]
    assert pair.server.state.name == "AWAIT_AUTH_RESULT"
    ok = AuthOk(name="alice", event="ev-1", moderator=True)
    assert pair.server_sends(ok) == [ok]
    assert (pair.client.state, pair.server.state) == (State.OPEN, State.OPEN)
    assert pair.client.version == pair.server.version == 1
    assert pair.client.role is Role.PARTICIPANT


def test_a_client_offering_a_newer_version_is_welcomed_with_ours() -> None:
    pair = Pair()
    pair.client_sends(Hello(role=Role.PARTICIPANT, version=9, client="future/9"))
    assert pair.server_sends(Welcome(version=1, server="main")) == [
        Welcome(version=1, server="main")
    ]
    assert pair.client.version == 1


def test_a_server_cannot_welcome_with_a_version_beyond_the_offer() -> None:
    pair = Pair()
    pair.client_sends(HELLO)
    with pytest.raises(LocalProtocolError, match="version 2"):
        pair.server.send(Welcome(version=2, server="main"))
    assert pair.server.state is State.AWAIT_WELCOME  # a refused send changes nothing


def test_a_client_refuses_a_welcome_with_a_version_it_did_not_offer() -> None:
    pair = Pair()
    pair.client.send(HELLO)
    pair.client.receive_data(encode_message(Welcome(version=2, server="rogue")).data, 0.0)
    with pytest.raises(RemoteProtocolError, match="version 2"):
        pair.client.next_event()
    assert pair.client.state is State.ERROR


def test_a_client_probes_a_server_with_ping_before_auth_and_reads_its_load() -> None:
    pair = Pair()
    pair.client_sends(HELLO)
    pair.server_sends(Welcome(version=1, server="child-1"))
    (ping,) = pair.client_sends(Ping(nonce=41))
    assert isinstance(ping, Ping)
    load = Load(participants=120, capacity=500)
    assert pair.server_sends(ping.pong(load)) == [Pong(nonce=41, load=load)]
    # The probe that won keeps its connection and authenticates on it.
    pair.client_sends(Auth(ticket=b"t"))
    pair.server_sends(AuthOk(name="alice", event="ev-1"))
    assert pair.client.state is State.OPEN


def test_a_ping_sent_with_auth_is_answered_while_the_server_checks_the_ticket() -> None:
    pair = Pair()
    pair.client_sends(HELLO)
    pair.server_sends(Welcome(version=1, server="main"))
    pair.client_sends(Auth(ticket=b"t"))
    pair.client_sends(Ping(nonce=1))
    assert pair.server_sends(Pong(nonce=1)) == [Pong(nonce=1)]
    assert pair.server.state is State.AWAIT_AUTH_RESULT


def test_a_failed_auth_closes_both_sides_with_the_reason() -> None:
    pair = Pair()
    pair.client_sends(HELLO)
    pair.server_sends(Welcome(version=1, server="main"))
    pair.client_sends(Auth(ticket=b"stale"))
    failed = AuthFailed(reason=AuthFailure.EXPIRED, message="ticket expired 3 min ago")
    closed = ConnectionClosed(ByeReason.AUTH_FAILED, "expired: ticket expired 3 min ago", True)
    assert pair.server_sends(failed) == [failed, closed]
    assert pair.client.state is pair.server.state is State.CLOSED
    assert pair.server.next_event() == ConnectionClosed(
        ByeReason.AUTH_FAILED, "expired: ticket expired 3 min ago", False
    )


def test_a_server_may_refuse_a_hello_with_bye() -> None:
    pair = Pair()
    pair.client_sends(Hello(role=Role.CONTROLLER_LINK, version=1, client="x/1"))
    bye = Bye(reason=ByeReason.UNSUPPORTED_VERSION, message="no controller links here")
    assert pair.server_sends(bye) == [bye, ConnectionClosed(bye.reason, bye.message, True)]


def test_a_controller_link_opens_without_an_event() -> None:
    pair = Pair()
    pair.open(role=Role.CONTROLLER_LINK, name="live-1", event=None)
    assert pair.server.role is Role.CONTROLLER_LINK


# -- traffic ----------------------------------------------------------------------


def test_chat_goes_up_as_a_command_and_comes_back_posted_under_the_authenticated_name() -> None:
    pair = Pair()
    pair.open(name="alice")
    (sent,) = pair.client_sends(SendChat(text="hello, room", seq=3))
    assert sent == SendChat(text="hello, room", seq=3)
    posted = ChatPosted(sender="alice", text="hello, room", seq=3)
    assert pair.server_sends(posted) == [posted]


def test_floor_commands_go_up_and_the_roster_and_snapshot_come_down() -> None:
    pair = Pair()
    pair.open(name="mod", moderator=True)
    assert pair.client_sends(RaiseHand()) == [RaiseHand()]
    assert pair.client_sends(GiveFloor(name="bob")) == [GiveFloor(name="bob")]
    roster = RosterUpdate(changed=(Member(name="bob", floor=True),), left=("carol",))
    assert pair.server_sends(roster) == [roster]
    snapshot = StateSnapshot(event="ev-1", title="All hands", mode=SpeakingMode.OPEN, attendance=2)
    assert pair.server_sends(snapshot) == [snapshot]


def test_a_refused_request_gets_an_error_and_the_connection_stays_open() -> None:
    pair = Pair()
    pair.open()
    pair.client_sends(GiveFloor(name="bob"))
    refusal = Error(code=ErrorCode.NOT_ALLOWED, message="only moderators give the floor")
    assert pair.server_sends(refusal) == [refusal]
    assert pair.client.state is State.OPEN


def test_media_flows_both_ways_with_its_header_fields() -> None:
    pair = Pair()
    pair.open()
    (received,) = pair.client_sends(video(seq=5, keyframe=True))
    assert isinstance(received, MediaFrame)
    assert (received.channel, received.stream_id, received.seq) == (Channel.VIDEO, 7, 5)
    assert received.keyframe and received.timestamp_us == 1_000_005
    assert bytes(received.payload) == b"vp8 " * 10
    assert pair.server_sends(received) == [received]


def test_a_received_media_frame_is_forwarded_to_every_listener_as_the_same_bytes() -> None:
    publisher = Pair()
    publisher.open(name="speaker")
    (frame,) = publisher.client_sends(video())
    assert isinstance(frame, MediaFrame)
    listeners = [Pair() for _ in range(3)]
    for listener in listeners:
        listener.open(name="listener")
    writes = [listener.server.send(frame) for listener in listeners]
    assert all(data is frame.data for data in writes)  # encoded once, by the publisher


def test_an_encoded_message_is_sent_to_many_connections_without_encoding_again() -> None:
    posted = encode_message(ChatPosted(sender="alice", text="to all"))
    listeners = [Pair() for _ in range(3)]
    for listener in listeners:
        listener.open(name="listener")
    assert all(listener.server.send(posted) is posted.data for listener in listeners)
    assert listeners[0].deliver(listeners[0].client, posted.data) == [posted.message]


def test_ready_made_frames_pass_the_same_checks_as_messages_encoded_on_the_spot() -> None:
    pair = Pair()
    pair.open()
    with pytest.raises(LocalProtocolError, match="server may not send SendChat"):
        pair.server.send(encode_message(SendChat(text="not a server's message")))
    pair.client_sends(Bye(reason=ByeReason.NORMAL))
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.server.send(video())
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.server.send(encode_message(ChatPosted(sender="alice", text="too late")))


def test_feeding_one_byte_at_a_time_gives_the_same_events_as_feeding_all_at_once() -> None:
    pair = Pair()
    pair.open()
    items: list[Message | MediaFrame] = [
        SendChat(text="é" * 300, seq=1),
        video(1, True),
        RaiseHand(),
        video(2),
        Ping(nonce=9),
    ]
    stream = b"".join(pair.client.send(item) for item in items)
    at_once = Connection(Side.SERVER, now=0.0)
    one_by_one = Connection(Side.SERVER, now=0.0)
    for connection in (at_once, one_by_one):
        prefix = encode_message(HELLO).data
        connection.receive_data(prefix, 0.0)
        drain(connection)
        connection.send(Welcome(version=1, server="main"))
        connection.receive_data(encode_message(Auth(ticket=b"t")).data, 0.0)
        drain(connection)
        connection.send(AuthOk(name="alice"))
    at_once.receive_data(stream, 0.0)
    expected = drain(at_once)
    seen = []
    for index in range(len(stream)):
        one_by_one.receive_data(stream[index : index + 1], 0.0)
        seen.extend(drain(one_by_one))
    assert seen == expected
    assert [type(event).__name__ for event in seen] == [
        "SendChat",
        "MediaFrame",
        "RaiseHand",
        "MediaFrame",
        "Ping",
    ]


# -- keepalive ----------------------------------------------------------------------


def test_a_quiet_connection_pings_after_the_interval_and_stays_open_when_answered() -> None:
    pair = Pair(Settings(ping_interval=10, idle_timeout=30))
    pair.open()
    assert pair.server.get_timer() == 10
    assert pair.step(9) == ([], [])
    client_saw, server_saw = pair.step(1)
    # Both ends heard nothing for 10 s, so both ping.
    assert client_saw == [Ping(nonce=1)] and server_saw == [Ping(nonce=1)]
    for connection, ping in ((pair.client, client_saw[0]), (pair.server, server_saw[0])):
        assert isinstance(ping, Ping)
        pair.deliver(pair.peer(connection), connection.send(ping.pong()))
    assert pair.server.get_timer() == 20
    for _ in range(10):
        client_saw, server_saw = pair.step(10)
        for connection, saw in ((pair.client, client_saw), (pair.server, server_saw)):
            for event in saw:
                assert isinstance(event, Ping)
                pair.deliver(pair.peer(connection), connection.send(event.pong()))
    assert pair.client.state is pair.server.state is State.OPEN


def test_traffic_from_the_peer_postpones_the_ping() -> None:
    pair = Pair(Settings(ping_interval=10, idle_timeout=30))
    pair.open()
    pair.now = 8
    pair.client_sends(SendChat(text="still here"))
    assert pair.server.get_timer() == 18
    assert pair.server.handle_timer(10) == b""


def test_a_peer_that_goes_silent_is_told_bye_after_the_idle_timeout() -> None:
    pair = Pair(Settings(ping_interval=10, idle_timeout=30))
    pair.open()
    pings = pair.server.handle_timer(10)  # nobody answers them
    assert pair.server.get_timer() == 20
    pings += pair.server.handle_timer(20)
    assert pair.server.get_timer() == 30
    bye = pair.server.handle_timer(30)
    assert pair.server.state is State.CLOSED
    assert pair.server.get_timer() is None
    (closed,) = drain(pair.server)
    assert closed == ConnectionClosed(ByeReason.IDLE_TIMEOUT, "nothing heard for 30 s", False)
    client_saw = pair.deliver(pair.client, pings + bye)
    assert [type(event) for event in client_saw] == [Ping, Ping, Bye, ConnectionClosed]


def test_a_connection_that_never_finishes_its_handshake_times_out() -> None:
    pair = Pair(Settings(handshake_timeout=5))
    pair.client_sends(HELLO)
    assert pair.server.get_timer() == 5
    assert pair.server.handle_timer(4.9) == b""
    client_saw = pair.deliver(pair.client, pair.server.handle_timer(5))
    bye = Bye(reason=ByeReason.HANDSHAKE_TIMEOUT, message="no handshake within 5 s")
    assert client_saw == [bye, ConnectionClosed(bye.reason, bye.message, True)]
    assert pair.client.get_timer() is None


# -- round trips --------------------------------------------------------------------


LINK_TIMING = Settings(ping_interval=10, idle_timeout=30, link_rtt_interval=2)


def answer(pair: Pair, saw: list[object], by: Connection) -> None:
    """``by`` answers each Ping it saw with its Pong, delivered to the other end now."""
    for event in saw:
        assert isinstance(event, Ping)
        pair.deliver(pair.peer(by), by.send(event.pong()))


def test_a_server_link_times_a_ping_on_opening_and_every_interval_however_busy() -> None:
    pair = Pair(LINK_TIMING)
    pair.open(role=Role.SERVER_LINK, name="child-1")
    assert pair.client.get_timer() == pair.server.get_timer() == 0  # at once
    client_saw, server_saw = pair.step(0)
    assert client_saw == [Ping(nonce=1)] and server_saw == [Ping(nonce=1)]
    pair.now += 0.25  # the network's round trip
    answer(pair, client_saw, pair.client)
    answer(pair, server_saw, pair.server)
    assert pair.client.take_round_trips() == pair.server.take_round_trips() == (0.25,)
    assert pair.client.take_round_trips() == ()  # each sample is taken once
    # Chat every half second: no keepalive would ever go, the timed Pings still do.
    for _ in range(8):
        client_saw, server_saw = pair.step(0.5)
        answer(pair, client_saw, pair.client)
        answer(pair, server_saw, pair.server)
        pair.client_sends(ChatPosted(sender="bob", text="busy"))
    assert pair.server.take_round_trips() == (0.0, 0.0)  # at 2.25 and 4.25: two more
    assert pair.server.state is State.OPEN


def test_keepalive_pings_are_timed_too_and_a_participant_gets_no_others() -> None:
    pair = Pair(LINK_TIMING)
    pair.open()  # a participant: link_rtt_interval does not apply
    assert pair.server.get_timer() == 10
    _, server_saw = pair.step(10)
    assert server_saw == [Ping(nonce=1)]
    pair.now += 0.5
    answer(pair, server_saw, pair.server)
    assert pair.client.take_round_trips() == (0.5,)


def test_an_unasked_or_mismatched_pong_is_ignored_and_the_link_stays_open() -> None:
    pair = Pair(LINK_TIMING)
    pair.open(role=Role.SERVER_LINK, name="child-1")
    stray = Pong(nonce=77)
    assert pair.client_sends(stray) == [stray]  # nothing asked yet
    client_saw, _ = pair.step(0)
    assert client_saw == [Ping(nonce=1)]  # the server's timed Ping
    assert pair.client_sends(Pong(nonce=2)) == [Pong(nonce=2)]  # not the nonce asked
    assert pair.server.take_round_trips() == ()
    pair.now += 0.1
    answer(pair, client_saw, pair.client)
    assert pair.client_sends(Pong(nonce=1)) == [Pong(nonce=1)]  # the same Pong again
    assert pair.server.take_round_trips() == (pytest.approx(0.1),)
    assert pair.server.pongs_unmatched == 3
    assert pair.server.state is State.OPEN


def test_pings_beyond_the_rate_are_dropped_unanswered_and_the_connection_stays_open() -> None:
    pair = Pair(Settings(ping_burst=4, ping_rate=2.0))
    pair.open(role=Role.SERVER_LINK, name="child-1")
    flood = b"".join(pair.client.send(Ping(nonce=n)) for n in range(1, 1001))
    seen = pair.deliver(pair.server, flood)
    assert seen == [Ping(nonce=n) for n in range(1, 5)]  # the burst, then nothing
    assert pair.server.pings_dropped == 996
    pair.now += 1.0  # two more a second
    seen = pair.deliver(pair.server, b"".join(pair.client.send(Ping(nonce=n)) for n in (7, 8, 9)))
    assert seen == [Ping(nonce=7), Ping(nonce=8)]
    chat = ChatPosted(sender="bob", text="still linked")
    assert pair.client_sends(chat) == [chat]
    assert pair.server.state is State.OPEN


def test_timed_pings_must_fit_the_ping_rate() -> None:
    with pytest.raises(ValueError, match="link_rtt_interval"):
        Settings(link_rtt_interval=0.1, ping_rate=2.0)
    with pytest.raises(ValueError, match="ping_burst"):
        Settings(ping_burst=0)


# -- closing ------------------------------------------------------------------------


def test_bye_closes_both_ends_and_next_event_repeats_connection_closed() -> None:
    pair = Pair()
    pair.open()
    bye = Bye(reason=ByeReason.NORMAL)
    closed = ConnectionClosed(ByeReason.NORMAL, "", True)
    assert pair.client_sends(bye) == [bye, closed]
    assert pair.server.next_event() == closed
    assert pair.client.next_event() == ConnectionClosed(ByeReason.NORMAL, "", False)
    # Bytes the peer had in flight are dropped, not parsed.
    pair.server.receive_data(b"\xff" * 20, 1.0)
    assert pair.server.next_event() == closed


def test_nothing_may_be_sent_after_the_connection_closed() -> None:
    pair = Pair()
    pair.open()
    pair.client_sends(Bye(reason=ByeReason.NORMAL))
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.server.send(ChatPosted(sender="alice", text="too late"))
    with pytest.raises(LocalProtocolError, match="closed"):
        pair.client.send(Bye(reason=ByeReason.NORMAL))


def test_eof_without_bye_reports_the_connection_lost() -> None:
    pair = Pair()
    pair.open()
    assert pair.hang_up(pair.client) == [
        ConnectionClosed(ByeReason.CONNECTION_LOST, "EOF without Bye", True)
    ]
    assert pair.server.state is State.CLOSED and pair.server.get_timer() is None


def test_eof_inside_a_frame_reports_the_connection_lost_after_the_whole_frames() -> None:
    pair = Pair()
    pair.open()
    data = pair.client.send(RaiseHand()) + pair.client.send(video())[:10]
    pair.server.receive_data(data, 0.0)
    pair.server.receive_data(b"", 0.0)
    assert drain(pair.server) == [
        RaiseHand(),
        ConnectionClosed(ByeReason.CONNECTION_LOST, "EOF inside a frame, 10 bytes unread", True),
    ]


def test_feeding_after_eof_is_our_mistake() -> None:
    server = Connection(Side.SERVER, now=0.0)
    server.receive_data(b"", 0.0)
    with pytest.raises(LocalProtocolError, match="after EOF"):
        server.receive_data(b"x", 0.0)


# -- state violations -----------------------------------------------------------------


def test_a_client_cannot_send_anything_before_hello() -> None:
    client = Connection(Side.CLIENT, now=0.0)
    with pytest.raises(LocalProtocolError, match="may not send Auth in AWAIT_HELLO"):
        client.send(Auth(ticket=b"t"))
    assert client.state is State.AWAIT_HELLO


def test_a_server_cannot_speak_first() -> None:
    server = Connection(Side.SERVER, now=0.0)
    with pytest.raises(LocalProtocolError, match="server may not send Welcome"):
        server.send(Welcome(version=1, server="main"))


def test_a_server_refuses_auth_before_hello() -> None:
    server = Connection(Side.SERVER, now=0.0)
    server.receive_data(encode_message(Auth(ticket=b"t")).data, 0.0)
    with pytest.raises(RemoteProtocolError, match="client may not send Auth in AWAIT_HELLO"):
        server.next_event()


def test_a_participant_cannot_send_media_before_it_is_authenticated() -> None:
    pair = Pair()
    pair.client_sends(HELLO)
    pair.server_sends(Welcome(version=1, server="main"))
    with pytest.raises(LocalProtocolError, match="VIDEO in AWAIT_AUTH"):
        pair.client.send(video())
    pair.server.receive_data(video().data, 0.0)
    with pytest.raises(RemoteProtocolError, match="VIDEO in AWAIT_AUTH"):
        pair.server.next_event()


@pytest.mark.parametrize(
    "forged",
    [
        ChatPosted(sender="the-moderator", text="everyone leave now"),
        RosterUpdate(left=("bob",)),
        AuthOk(name="admin"),
        StateSnapshot(event="ev-1", title="", mode=SpeakingMode.OPEN, attendance=0),
    ],
    ids=lambda message: type(message).__name__,
)
def test_a_participant_cannot_send_what_only_a_server_says(forged: Message) -> None:
    pair = Pair()
    pair.open()
    data = encode_message(forged).data
    with pytest.raises(LocalProtocolError, match="on a participant connection"):
        pair.client.send(forged)
    pair.server.receive_data(data, 0.0)
    with pytest.raises(RemoteProtocolError, match="client may not send"):
        pair.server.next_event()


def test_a_server_link_carries_chat_up_that_a_participant_may_not_send() -> None:
    posted = ChatPosted(sender="bob", text="from the child's room")
    link = Pair()
    link.open(role=Role.SERVER_LINK, name="child-1")
    assert link.client_sends(posted) == [posted]


def test_only_a_server_tells_only_a_participant_of_its_dropped_media() -> None:
    notice = MediaDropped(audio_frames=3, video_frames=0)
    pair = Pair()
    pair.open()
    assert pair.server_sends(notice) == [notice]
    with pytest.raises(LocalProtocolError, match="client may not send MediaDropped"):
        pair.client.send(notice)
    pair.server.receive_data(encode_message(notice).data, pair.now)
    with pytest.raises(RemoteProtocolError, match="client may not send MediaDropped"):
        pair.server.next_event()
    link = Pair()
    link.open(role=Role.SERVER_LINK, name="child-1")
    with pytest.raises(LocalProtocolError, match="server may not send MediaDropped"):
        link.server.send(notice)


def test_after_the_peer_breaks_the_protocol_only_bye_may_be_sent() -> None:
    pair = Pair()
    pair.open()
    pair.server.receive_data(b"\x09" * 8, 0.0)
    with pytest.raises(RemoteProtocolError, match="frame version 9") as caught:
        pair.server.next_event()
    with pytest.raises(RemoteProtocolError):
        pair.server.next_event()  # it stays broken
    assert pair.server.get_timer() is None
    with pytest.raises(LocalProtocolError, match="only Bye"):
        pair.server.send(ChatPosted(sender="alice", text="hi"))
    with pytest.raises(LocalProtocolError, match="only Bye"):
        pair.server.send(video())
    bye = Bye.for_error(caught.value)
    client_saw = pair.deliver(pair.client, pair.server.send(bye))
    assert client_saw == [bye, ConnectionClosed(ByeReason.PROTOCOL_ERROR, bye.message, True)]
    assert pair.server.next_event() == ConnectionClosed(
        ByeReason.PROTOCOL_ERROR, bye.message, False
    )


# -- bounds -----------------------------------------------------------------------------


def header(channel: Channel, type_: int, length: int, flags: int = 0) -> bytes:
    return struct.pack(">BBBBI", 1, channel, type_, flags, length)


@pytest.mark.parametrize("channel", list(Channel))
def test_a_header_claiming_an_oversized_frame_is_refused_before_its_payload(
    channel: Channel,
) -> None:
    pair = Pair()
    pair.open()
    type_ = 0 if channel.is_media else 1
    pair.server.receive_data(header(channel, type_, MAX_PAYLOAD[channel] + 1), 0.0)
    with pytest.raises(RemoteProtocolError, match="the limit is"):
        pair.server.next_event()


def test_a_large_frame_out_of_turn_is_refused_on_its_header_alone() -> None:
    server = Connection(Side.SERVER, now=0.0)
    server.receive_data(header(Channel.VIDEO, 0, 200_000), 0.0)
    with pytest.raises(RemoteProtocolError, match="VIDEO in AWAIT_HELLO"):
        server.next_event()


def test_a_frame_within_its_limit_waits_for_its_payload() -> None:
    pair = Pair()
    pair.open()
    frame = video().data
    pair.server.receive_data(frame[:-1], 0.0)
    assert pair.server.next_event() is NEED_DATA
    pair.server.receive_data(frame[-1:], 0.0)
    assert isinstance(pair.server.next_event(), MediaFrame)


def test_a_shell_that_feeds_past_the_buffer_bound_without_draining_gets_a_local_error() -> None:
    settings = Settings()
    server = Connection(Side.SERVER, now=0.0, settings=settings)
    server.receive_data(b"\x01" * settings.max_buffer, 0.0)
    with pytest.raises(LocalProtocolError, match="drain"):
        server.receive_data(b"\x01", 0.0)


def test_settings_that_cannot_work_are_refused() -> None:
    with pytest.raises(ValueError, match="ping_interval"):
        Settings(ping_interval=30, idle_timeout=30)
    with pytest.raises(ValueError, match="largest frame"):
        Settings(max_buffer=1024)
