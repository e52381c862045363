"""``LiveServer`` when things go wrong: garbage, silence, a slow reader, a parent that restarts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.live.live_support import LINK_SECRETS, Center
from tests.live.server_support import (
    HOST,
    Pki,
    connect,
    eventually,
    joined,
    running,
    sealed,
    speaker_and_small_reader,
)
from townhall.live import Backoff, ServerRole
from townhall.live.server import LiveServer
from townhall.wire import ByeReason, Settings

FAST_BACKOFF = {"backoff": Backoff(initial=0.05, maximum=0.2)}


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


async def test_garbage_closes_only_the_connection_that_sent_it(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main") as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(main.port, context, "bo", sealed(issuer, "bo"))

        # Before Hello: an HTTP request on the live port.
        http = await connect(main.port, context, "http", hello=False)
        http.send_raw(b"GET / HTTP/1.1\r\nHost: main\r\n\r\n")
        # After joining: bytes that are no frame.
        cy = await joined(main.port, context, "cy", sealed(issuer, "cy"))
        cy.send_raw(b"\x01\x00\xee\x00\x00\x00\x00\x00" + b"\xff" * 40)
        # A frame too large to be a handshake message.
        big = await connect(main.port, context, "big", sealed(issuer, "di"), auto_auth=False)
        await big.wait_for(lambda: big.welcome is not None, "Welcome")
        big.send_raw(b"\x01\x00\x03\x00\x00\x00\x80\x00" + b"\x00" * 100)
        # Not TLS at all.
        plain = await connect(main.port, None, "plain", hello=False)
        plain.send_raw(b"\x16\x03\x01\x00\x05hello" + b"\x00" * 64)

        for client in (http, cy, big):
            await client.closed_by_server()
            assert client.closed is not None, client
            assert client.closed.reason is ByeReason.PROTOCOL_ERROR, (client, client.closed)
        await plain.closed_by_server()

        ana.chat("still talking")
        bo.chat("still listening")
        for client in (ana, bo):
            await client.wait_for(lambda c=client: len(c.chats) == 2, "both messages")  # type: ignore[misc]
            assert client.public_chat() == [("ana", "still talking"), ("bo", "still listening")]
        await ana.wait_for(lambda: "cy" not in ana.roster, "cy gone")
        assert main.load()[0] == 2


async def test_a_silent_peer_is_closed_after_the_handshake_timeout(
    pki: Pki, issuer: Center
) -> None:
    settings = Settings(handshake_timeout=0.2, ping_interval=5, idle_timeout=10)
    async with running(pki, "main", wire_settings=settings) as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        context = pki.client_ssl()
        mute = await connect(main.port, context, "mute", hello=False)
        shy = await connect(main.port, context, "shy", sealed(issuer, "bo"), auto_auth=False)
        for client in (mute, shy):
            await client.closed_by_server()
            assert client.closed is not None
            assert client.closed.reason is ByeReason.HANDSHAKE_TIMEOUT
        assert shy.welcome is not None


async def test_keepalive_pings_the_quiet_and_closes_the_unanswering(
    pki: Pki, issuer: Center
) -> None:
    settings = Settings(handshake_timeout=5, ping_interval=0.05, idle_timeout=0.3)
    async with running(pki, "main", wire_settings=settings) as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        context = pki.client_ssl()
        ana = await joined(main.port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(main.port, context, "bo", sealed(issuer, "bo"), answer_pings=False)
        await bo.closed_by_server()
        assert bo.pings >= 1
        assert bo.closed is not None and bo.closed.reason is ByeReason.IDLE_TIMEOUT
        await ana.wait_for(lambda: ana.pings >= 3, "pings, answered")
        assert ana.joined
        ana.chat("still here")
        await ana.wait_for(lambda: len(ana.chats) == 1, "its chat")


async def test_a_child_that_cannot_verify_its_parent_never_links(
    pki: Pki, issuer: Center, tmp_path: Path
) -> None:
    key = issuer.signing_key.public_key()
    states: list[str] = []
    stranger = Pki(tmp_path / "elsewhere")  # another CA: the parent's certificate is unknown
    async with (
        running(pki, "main") as main,
        running(
            stranger,
            "child-a",
            room_defaults=FAST_BACKOFF,
            on_status_change=lambda: states.extend(s.upstream for s in child.status()),
        ) as child,
    ):
        main.assign(issuer.assignment(ServerRole.MAIN, children=("child-a",)), key)
        child.assign(
            issuer.assignment(
                ServerRole.CHILD,
                parent=f"{HOST}:{main.port}",
                link_secret=LINK_SECRETS["child-a"],
            ),
            key,
        )
        await eventually(lambda: states.count("waiting") >= 3, "refused tries")
        assert "up" not in states and "handshake" not in states
        assert main.status()[0].children == ()


async def test_a_slow_reader_loses_media_but_not_chat_and_holds_up_no_one(
    pki: Pki, issuer: Center
) -> None:
    limits = {"media_limit": 64 * 1024, "limit": 8 * 1024 * 1024}
    async with running(pki, "main", outbox_limits=limits) as main:
        ana, bo, cy, stream = await speaker_and_small_reader(main, pki, issuer)

        cy.pause_reading()
        # Batches a fast reader takes in one pass (under media_limit), until cy's
        # kernel buffers, its TLS buffer and then its queue are full.
        sent = 0
        for _ in range(2000):
            ana.speak(10, size=4000)
            sent += 10
            await bo.wait_for(lambda n=sent: len(bo.media) == n, f"{sent} frames at bo")  # type: ignore[misc]
            if main.counters().dropped_frames:
                break
        assert main.counters().dropped_frames > 0
        ana.chat("after the flood")
        bo.chat("heard it all")
        await bo.wait_for(lambda: len(bo.chats) == 2, "both messages at bo")

        cy.resume_reading()
        await cy.wait_for(lambda: len(cy.chats) == 2, "both messages at cy")
        assert (
            cy.public_chat()
            == bo.public_chat()
            == [
                ("ana", "after the flood"),
                ("bo", "heard it all"),
            ]
        )
        assert bo.media_from(stream) == list(range(sent))  # the others got everything
        got = cy.media_from(stream)
        assert 0 < len(got) < sent and got == sorted(got)  # cy lost some, in order
        assert cy.joined  # and is still there


async def test_a_child_reconnects_to_a_restarted_parent_and_chat_arrives_once(
    pki: Pki, issuer: Center
) -> None:
    key = issuer.signing_key.public_key()
    main_assignment = issuer.assignment(ServerRole.MAIN, children=("child-a",))
    states: list[str] = []

    def note() -> None:
        states.extend(s.upstream for s in child.status())

    async with running(pki, "child-a", room_defaults=FAST_BACKOFF, on_status_change=note) as child:
        first = await _start_main(pki, 0)
        port = first.port
        first.assign(main_assignment, key)
        child.assign(
            issuer.assignment(
                ServerRole.CHILD, parent=f"{HOST}:{port}", link_secret=LINK_SECRETS["child-a"]
            ),
            key,
        )
        await eventually(lambda: child.status()[0].upstream == "up", "the child linked Up")
        context = pki.client_ssl()
        ana = await joined(port, context, "ana", sealed(issuer, "ana"))
        bo = await joined(child.port, context, "bo", sealed(issuer, "bo"))
        ana.chat("before the cut")
        await bo.wait_for(lambda: len(bo.chats) == 1, "the first message")

        await first.close()  # the parent goes away
        await ana.closed_by_server()
        assert ana.closed is not None and ana.closed.reason is ByeReason.SHUTDOWN
        cut = len(states)
        bo.chat("during the cut")
        # Connection refused, again and again: each try goes connecting -> waiting.
        await eventually(lambda: states[cut:].count("waiting") >= 3, "retries with backoff")
        assert "connecting" in states[cut:] and "up" not in states[cut:]
        assert bo.joined  # the child keeps its participants

        second = await _start_main(pki, port)  # the same address, an empty room
        try:
            second.assign(main_assignment, key)
            await eventually(lambda: child.status()[0].upstream == "up", "linked Up again")
            ana = await joined(port, context, "ana-again", sealed(issuer, "ana"))
            await bo.wait_for(lambda: len(bo.chats) == 2, "bo's own message back")
            await ana.wait_for(lambda: ("bo", "during the cut") in ana.public_chat(), "it")
            ana.chat("after the cut")
            await bo.wait_for(lambda: len(bo.chats) == 3, "the third message")
            assert bo.public_chat() == [
                ("ana", "before the cut"),
                ("bo", "during the cut"),
                ("ana", "after the cut"),
            ]
            assert ana.public_chat() == [("bo", "during the cut"), ("ana", "after the cut")]
            assert second.status()[0].children == ("child-a",)
        finally:
            await second.close()


async def test_closing_says_bye_shutdown_to_everyone(pki: Pki, issuer: Center) -> None:
    async with running(pki, "main") as main:
        main.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())
        context = pki.client_ssl()
        clients = [
            await joined(main.port, context, name, sealed(issuer, name)) for name in ("ana", "bo")
        ]
        waiting = await connect(main.port, context, "waiting", auto_auth=False)
        await waiting.wait_for(lambda: waiting.welcome is not None, "Welcome")
        await main.close()
        for client in clients:
            await client.closed_by_server()
            assert client.closed is not None and client.closed.reason is ByeReason.SHUTDOWN
        await waiting.closed_by_server()
        with pytest.raises(OSError):
            await connect(main.port, context, "late")


async def _start_main(pki: Pki, port: int) -> LiveServer:
    server = LiveServer(
        name="main",
        host=HOST,
        port=port,
        server_ssl=pki.server_ssl("main"),
        upstream_ssl=pki.upstream_ssl("main"),
    )
    await server.start()
    return server


async def test_a_new_role_in_an_event_replaces_its_room_and_drops_its_connections(
    pki: Pki, issuer: Center
) -> None:
    key = issuer.signing_key.public_key()
    async with running(pki, "child-a", room_defaults=FAST_BACKOFF) as server:
        server.assign(issuer.assignment(ServerRole.MAIN), key)
        bo = await joined(server.port, pki.client_ssl(), "bo", sealed(issuer, "bo"))
        server.assign(
            issuer.assignment(
                ServerRole.CHILD, parent=f"{HOST}:1", link_secret=LINK_SECRETS["child-a"]
            ),
            key,
        )
        await bo.closed_by_server()  # cut: it runs server selection again
        assert [(s.role, s.participants) for s in server.status()] == [("child", 0)]
        await eventually(lambda: server.status()[0].upstream == "waiting", "its parent tried")
