"""The pass of writes (``fanout.send_each``), compiled and in Python, over real sockets and TLS.

Both loops must give the same results: every byte a socket took arrives once
and in order, and whatever it did not take comes back to the caller, exactly
the rest, for the transport to send. A real ``LiveServer`` then runs a
listener that stalls until its socket fills, and resumes: its TLS stream
stays intact (a byte lost, doubled or out of order would fail its records'
authentication), with both loops.

``TOWNHALL_REQUIRE_COMPILED=1`` (set by ``scripts/test``) makes a missing
compiled loop a failure rather than a skip: CI builds it from source.
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import Pki, running, speaker_and_small_reader
from townhall.live import fanout, server
from townhall.live.fanout import Leftover, SendEach, Writer
from townhall.live.server import LiveServer
from townhall.live.tls import TLSSession


def compiled_loop() -> SendEach:
    if not fanout.COMPILED:
        if os.environ.get("TOWNHALL_REQUIRE_COMPILED") == "1":
            pytest.fail("townhall.live._fanout was not built (is a C compiler installed?)")
        pytest.skip("townhall.live._fanout is not built here")
    return fanout.send_each


@pytest.fixture(params=["compiled", "python"])
def send_each(request: pytest.FixtureRequest) -> SendEach:
    return compiled_loop() if request.param == "compiled" else fanout.send_each_python


@pytest.fixture
def pairs() -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = []
    for _ in range(3):
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        theirs.setblocking(False)
        made.append((ours, theirs))
    yield made
    for ours, theirs in made:
        ours.close()
        theirs.close()


def read_all(sock: socket.socket) -> bytes:
    chunks = []
    while True:
        try:
            chunk = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def fill(sock: socket.socket) -> None:
    """Write until the socket takes nothing more."""
    while True:
        try:
            sock.send(b"\0" * 65536)
        except BlockingIOError:
            return


def tls_pair(pki: Pki) -> tuple[TLSSession, TLSSession]:
    """A live server's session and a participant's, handshaken through memory."""
    ours = TLSSession(pki.server_ssl("main"), server_side=True)
    theirs = TLSSession(pki.client_ssl(), server_side=False, server_hostname="127.0.0.1")
    flight = theirs.handshake(b"")
    while not (ours.secure and theirs.secure):
        flight = ours.handshake(flight) if not ours.secure else ours.pending()
        flight = theirs.handshake(flight) if not theirs.secure else theirs.decrypt(flight)[0]
    return ours, theirs


def test_each_socket_gets_its_own_bytes_and_a_writerless_one_comes_back(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    writers: list[Writer | None] = [(None, None, ours.fileno()) for ours, _ in pairs]
    writers[1] = None  # a browser's WebSocket: written the slow way
    datas = [b"first" * 40, b"second", b""]
    assert send_each(writers, datas) == [(1, None)]  # the empty one is skipped
    assert [read_all(theirs) for _, theirs in pairs] == [b"first" * 40, b"", b""]


def test_what_a_full_socket_did_not_take_comes_back_exactly(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    (full, full_peer), (free, free_peer), _ = pairs
    fill(full)
    data = bytes(range(256)) * 64
    writers: list[Writer | None] = [(None, None, full.fileno()), (None, None, free.fileno())]
    assert send_each(writers, [data, b"to the free one"]) == [(0, data)]
    assert read_all(free_peer) == b"to the free one"

    read_all(full_peer)  # room again, but less than a big write needs
    big = os.urandom(8 * 1024 * 1024)
    [(index, rest)] = send_each(writers[:1], [big])
    assert index == 0 and isinstance(rest, bytes) and 0 < len(rest) < len(big)
    taken = len(big) - len(rest)
    assert big[taken:] == rest  # the rest, and only the rest, to give the transport


def test_records_sent_are_the_plaintext_to_the_participant(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]], tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    (ours, peer), (plain, plain_peer), _ = pairs
    server_side, participant = tls_pair(pki)
    write, read = server_side.record_writer()
    writers: list[Writer | None] = [(write, read, ours.fileno()), (None, None, plain.fileno())]
    frames = [os.urandom(180) for _ in range(50)]
    for frame in frames:
        assert send_each(writers, [frame, b"clear"]) == []
    plaintext, closed = participant.decrypt(read_all(peer))
    assert plaintext == b"".join(frames) and not closed
    assert read_all(plain_peer) == b"clear" * 50


def test_a_failed_encryption_comes_back_and_the_others_are_written(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]], tmp_path: Path
) -> None:
    pki = Pki(tmp_path)
    (ours, peer), (other, other_peer), _ = pairs
    shut, _ = tls_pair(pki)
    shut.close_notify()  # TLS is over on this one: a write raises
    write, read = shut.record_writer()
    writers: list[Writer | None] = [(write, read, ours.fileno()), (None, None, other.fileno())]
    [(index, failure)] = send_each(writers, [b"too late", b"still written"])
    assert index == 0 and isinstance(failure, ssl.SSLError)
    assert read_all(other_peer) == b"still written"
    assert read_all(peer) == b""  # nothing half-written


def test_an_interrupt_in_a_writer_is_not_handed_back_as_the_connection_s(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    """A failed encryption is the connection's; Ctrl-C during one is the server's."""

    def interrupted(data: bytes) -> int:
        raise KeyboardInterrupt

    ours = pairs[0][0]
    with pytest.raises(KeyboardInterrupt):
        send_each([(interrupted, lambda: b"", ours.fileno())], [b"data"])


def test_a_dead_socket_gives_its_bytes_back_for_the_transport_to_report(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    (ours, peer), (other, other_peer), _ = pairs
    peer.close()  # the participant is gone: EPIPE, or ECONNRESET
    writers: list[Writer | None] = [(None, None, ours.fileno()), (None, None, other.fileno())]
    assert send_each(writers, [b"nobody reads", b"someone does"]) == [(0, b"nobody reads")]
    assert read_all(other_peer) == b"someone does"


def test_mismatched_or_malformed_arguments_are_refused(
    send_each: SendEach, pairs: list[tuple[socket.socket, socket.socket]]
) -> None:
    ours = pairs[0][0]
    with pytest.raises(ValueError, match="as many datas as writers"):
        send_each([(None, None, ours.fileno())], [b"a", b"b"])
    with pytest.raises((TypeError, ValueError)):
        send_each([(None, ours.fileno())], [b"a"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        send_each([(None, None, ours.fileno())], ["not bytes"])  # type: ignore[list-item]
    assert read_all(pairs[0][1]) == b""


def unsent_yet_writable(main: LiveServer) -> list[object]:
    """Connections a pass would write to directly while their transports still hold
    bytes: those bytes would arrive after the new ones. There must be none."""
    return [
        conn
        for conn in main._conns
        if conn.writer is not None
        and not conn.paused
        and conn.transport is not None
        and conn.transport.get_write_buffer_size()
    ]


@pytest.mark.parametrize("loop", ["compiled", "python"])
async def test_a_listener_whose_socket_fills_gets_an_intact_stream_in_order(
    loop: str, tmp_path: Path, issuer: Center, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stalled reader's socket fills; the pass hands the rest of a write to the
    transport, which pauses the connection; the reader resumes and gets every frame
    not dropped, once, in order, through TLS records that all authenticate."""
    chosen = compiled_loop() if loop == "compiled" else fanout.send_each_python
    handed_back: list[Leftover] = []

    def watched(writers: Sequence[Writer | None], datas: Sequence[bytes]) -> list[Leftover]:
        leftovers = chosen(writers, datas)
        handed_back.extend(leftovers)
        return leftovers

    monkeypatch.setattr(server, "send_each", watched)
    pki = Pki(tmp_path)
    limits = {"media_limit": 256 * 1024, "limit": 8 * 1024 * 1024}
    async with running(
        pki, "main", outbox_limits=limits, participant_send_buffer=16 * 1024
    ) as main:
        ana, bo, cy, stream = await speaker_and_small_reader(main, pki, issuer)
        cy.pause_reading()
        sent = 0
        while not any(isinstance(left, bytes) for _, left in handed_back):
            ana.speak(10, size=2000, clocked=True)
            sent += 10
            await bo.wait_for(lambda n=sent: len(bo.media_from(stream)) == n, "bo heard")  # type: ignore[misc]
            assert unsent_yet_writable(main) == [], "the next pass would pass the transport"
            assert sent < 20_000, "cy's socket never filled"
        cy.resume_reading()
        for _ in range(100):  # passes while cy's socket empties: the transport's rest first
            ana.speak(10, size=200, clocked=True)
            sent += 10
            await bo.wait_for(lambda n=sent: len(bo.media_from(stream)) == n, "bo heard")  # type: ignore[misc]
            assert unsent_yet_writable(main) == []
        ana.chat("done")
        await cy.wait_for(lambda: len(cy.chats) == 1, "the chat after the stall")
        got = cy.media_from(stream)
        assert got == sorted(set(got)) and got[0] == 0  # once each, in order
        assert len(got) + main.counters().dropped_frames == sent
        assert bo.media_from(stream) == list(range(sent))
        assert cy.joined and not cy.eof
