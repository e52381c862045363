"""Whatever bytes arrive, a Connection either makes sense of them or blames the peer.

Hypothesis feeds arbitrary bytes, and mutated valid streams, to a server (and
a client) driven the way a live server drives it; the only exception allowed
out is RemoteProtocolError, after which Bye must still be sendable.
"""

from __future__ import annotations

import hypothesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from townhall.wire import (
    NEED_DATA,
    Auth,
    AuthOk,
    Bye,
    Channel,
    Connection,
    ConnectionClosed,
    GiveFloor,
    Hello,
    MediaFrame,
    Message,
    Mute,
    OpenStream,
    Ping,
    RaiseHand,
    RemoteProtocolError,
    Role,
    SendChat,
    Side,
    State,
    Welcome,
    encode_message,
)
from townhall.wire.messages import Codec

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run_server(chunks: list[bytes]) -> None:
    """Feed the chunks to a server that answers like a live server would."""
    server = Connection(Side.SERVER, now=0.0)
    now = 0.0
    state = server.state
    for chunk in chunks:
        now += 1.0
        server.receive_data(chunk, now)
        try:
            while True:
                state = server.state
                event = server.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
                if isinstance(event, Hello):
                    server.send(Welcome(version=1, server="main"))
                elif isinstance(event, Auth):
                    server.send(AuthOk(name="alice", event="ev-1"))
                elif isinstance(event, Ping):
                    server.send(event.pong())
        except RemoteProtocolError as exc:
            hypothesis.event(f"refused in {state.name}: {str(exc).split(':')[0][:40]}")
            server.send(Bye.for_error(exc))
            assert server.state is State.CLOSED
            return
        server.handle_timer(now)
    hypothesis.event(f"ended in {server.state.name}")


def run_client(chunks: list[bytes]) -> None:
    """Feed the chunks to a client that has said Hello and answers pings."""
    client = Connection(Side.CLIENT, now=0.0)
    client.send(Hello(role=Role.PARTICIPANT, version=1, client="fuzz/1"))
    for chunk in chunks:
        client.receive_data(chunk, 0.0)
        try:
            while True:
                event = client.next_event()
                if event is NEED_DATA or isinstance(event, ConnectionClosed):
                    break
                if isinstance(event, Welcome):
                    client.send(Auth(ticket=b"t"))
                elif isinstance(event, Ping):
                    client.send(event.pong())
        except RemoteProtocolError as exc:
            client.send(Bye.for_error(exc))
            return


names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cc", "Cs")), min_size=1, max_size=8
)
participant_traffic: st.SearchStrategy[Message | MediaFrame] = st.one_of(
    st.builds(SendChat, text=names, seq=st.integers(0, 2**32 - 1)),
    st.builds(RaiseHand),
    st.builds(GiveFloor, name=names),
    st.builds(Mute, name=names, muted=st.booleans()),
    st.builds(OpenStream, codec=st.sampled_from(Codec)),
    st.builds(Ping, nonce=st.integers(0, 2**64 - 1)),
    st.builds(
        MediaFrame.build,
        st.sampled_from([Channel.AUDIO, Channel.VIDEO]),
        stream_id=st.integers(0, 2**32 - 1),
        seq=st.integers(0, 2**32 - 1),
        timestamp_us=st.integers(0, 2**64 - 1),
        payload=st.binary(min_size=1, max_size=64),
    ),
)


def frame_bytes(item: Message | MediaFrame) -> bytes:
    return item.data if isinstance(item, MediaFrame) else encode_message(item).data


@st.composite
def client_streams(draw: st.DrawFn) -> bytes:
    """Everything a participant sends: Hello, Auth, then traffic."""
    items: list[Message | MediaFrame] = [
        Hello(role=Role.PARTICIPANT, version=1, client="fuzz/1"),
        Auth(ticket=draw(st.binary(min_size=1, max_size=32))),
        *draw(st.lists(participant_traffic, min_size=1, max_size=8)),
    ]
    return b"".join(frame_bytes(item) for item in items)


@st.composite
def mutated(draw: st.DrawFn, streams: st.SearchStrategy[bytes]) -> bytes:
    data = bytearray(draw(streams))
    for _ in range(draw(st.integers(1, 4))):
        position = draw(st.integers(0, len(data)))
        if draw(st.booleans()):  # Hypothesis favours small numbers: reach the traffic too
            position = len(data) - position
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and position < len(data):
            data[position] ^= draw(st.integers(1, 255))
        elif action == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[position:]
    return bytes(data)


@st.composite
def chunked(draw: st.DrawFn, streams: st.SearchStrategy[bytes]) -> list[bytes]:
    """A stream cut at arbitrary points, sometimes ending in EOF."""
    data = draw(streams)
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=6)))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    chunks = [chunk for chunk in chunks if chunk]
    if draw(st.booleans()):
        chunks.append(b"")
    return chunks


@FUZZ
@given(chunked(st.binary(max_size=256)))
def test_a_server_fed_arbitrary_bytes_raises_nothing_but_remote_protocol_error(
    chunks: list[bytes],
) -> None:
    run_server(chunks)


@FUZZ
@given(chunked(mutated(client_streams())))
def test_a_server_fed_a_mutated_client_stream_raises_nothing_but_remote_protocol_error(
    chunks: list[bytes],
) -> None:
    run_server(chunks)


@FUZZ
@given(chunked(st.binary(max_size=256)))
def test_a_client_fed_arbitrary_bytes_raises_nothing_but_remote_protocol_error(
    chunks: list[bytes],
) -> None:
    run_client(chunks)


@FUZZ
@given(client_streams(), st.data())
def test_a_valid_stream_gives_the_same_events_however_it_is_cut(
    stream: bytes, data: st.DataObject
) -> None:
    def events(chunks: list[bytes]) -> list[object]:
        server = Connection(Side.SERVER, now=0.0)
        seen: list[object] = []
        for chunk in chunks:
            server.receive_data(chunk, 0.0)
            while (event := server.next_event()) is not NEED_DATA:
                assert not isinstance(event, ConnectionClosed)
                seen.append(event)
                if isinstance(event, Hello):
                    server.send(Welcome(version=1, server="main"))
                elif isinstance(event, Auth):
                    server.send(AuthOk(name="alice"))
        return seen

    whole = events([stream])
    cut = [chunk for chunk in data.draw(chunked(st.just(stream))) if chunk]  # no EOF
    assert events(cut) == whole
    assert len(whole) >= 2
