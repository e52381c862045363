"""The live port's WebSocket, over real TLS: a browser's way in, and what it refuses.

A wsproto client plays the browser (ALPN ``h2, http/1.1``, an ``Origin``, one
binary message per wire frame) beside a native participant in the same room;
every bad input is refused with its HTTP status or close code while the
native participant chats on undisturbed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.live.live_support import Center
from tests.live.server_support import (
    HOST,
    Pki,
    WireClient,
    joined,
    running,
    sealed,
)
from tests.live.websocket_support import CENTER_ORIGIN, connect_ws, join_ws
from townhall.live import ServerRole
from townhall.live.server import LiveServer
from townhall.live.websocket import CloseCode, origin_of
from townhall.wire import (
    AuthFailed,
    AuthFailure,
    ByeReason,
    Codec,
    MediaFrame,
    RequestKeyFrame,
    Settings,
    TakeFloor,
)
from townhall.wire.frames import Channel, pack_frame


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path)


def browser_server(pki: Pki, **options: object):  # type: ignore[no-untyped-def]
    return running(pki, "main", browser_origins=[CENTER_ORIGIN + "/"], **options)


def assign_main(server: LiveServer, issuer: Center) -> None:
    server.assign(issuer.assignment(ServerRole.MAIN), issuer.signing_key.public_key())


async def chat_round_trip(native: WireClient, text: str) -> None:
    """The native participant still chats: its message comes back to it."""
    native.chat(text)
    await native.wait_for(lambda: (native.name, text) in native.public_chat(), f"chat {text!r}")


async def test_a_browser_joins_chats_with_a_native_participant_and_hears_it(
    pki: Pki, issuer: Center
) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        bo = await join_ws(main.port, pki, "bo", sealed(issuer, "bo"))
        assert bo.welcome is not None and bo.welcome.server == "main"
        await ana.wait_for(lambda: "bo" in ana.roster, "bo in the roster")
        assert set(bo.roster) == {"ana", "bo"}

        bo.chat("hello from the browser")
        ana.chat("hello from the desktop")
        expected = {("bo", "hello from the browser"), ("ana", "hello from the desktop")}
        for client in (ana, bo):
            await client.wait_for(lambda c=client: set(c.public_chat()) == expected, "both chats")  # type: ignore[misc]
        assert ana.public_chat() == bo.public_chat()  # one order for everybody
        bo.chat("just for you", to="ana")
        await ana.wait_for(lambda: any(c.to == "ana" for c in ana.chats), "the private chat")

        ana.send(TakeFloor())
        ana.open_stream(Codec.OPUS)
        await ana.wait_for(lambda: ana.my_stream() is not None, "ana's stream")
        stream = ana.my_stream()
        await bo.wait_for(lambda: stream in bo.streams, "ana's stream announced to bo")
        ana.speak(30)
        await bo.wait_for(lambda: len(bo.media_from(stream)) == 30, "30 audio frames")  # type: ignore[arg-type]
        assert bo.media_from(stream) == list(range(30))  # type: ignore[arg-type]
        # each WebSocket message carried exactly one wire frame
        assert bo.messages_in == len(bo.messages) + len(bo.media)
        assert bo.protocol_error is None

        bo.leave()
        await ana.wait_for(lambda: "bo" not in ana.roster, "bo gone")
        await bo.refused()
        assert bo.close_code == CloseCode.NORMAL


async def test_the_port_answers_health_and_refuses_other_paths(pki: Pki, issuer: Center) -> None:
    async with browser_server(pki) as main:
        healthy = await connect_ws(main.port, pki, "health", path="/healthz")
        lost = await connect_ws(main.port, pki, "lost", path="/other")
        for client in (healthy, lost):
            await client.refused()
        assert healthy.status == 200 and b"townhall live server" in bytes(healthy.raw)
        assert lost.status == 404 and not lost.accepted


@pytest.mark.parametrize(
    ("origin", "status"),
    [("https://evil.test", 403), (None, 403), ("https://center.test:8443", 403)],
)
async def test_an_upgrade_from_another_origin_is_refused_before_the_websocket(
    pki: Pki, issuer: Center, origin: str | None, status: int
) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        intruder = await connect_ws(main.port, pki, "intruder", sealed(issuer, "bo"), origin=origin)
        await intruder.refused()
        assert intruder.status == status and not intruder.accepted
        assert intruder.auth is None
        await chat_round_trip(ana, "still here")
        assert set(ana.roster) == {"ana"}


async def test_an_oversized_handshake_is_refused(pki: Pki, issuer: Center) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        big = await connect_ws(main.port, pki, "big", extra_headers=[(b"x-padding", b"p" * 9000)])
        await big.refused()
        assert big.status == 431 and not big.accepted
        await chat_round_trip(ana, "undisturbed")


async def test_a_slow_loris_handshake_is_cut_at_the_handshake_timeout(
    pki: Pki, issuer: Center
) -> None:
    async with browser_server(pki, wire_settings=Settings(handshake_timeout=0.5)) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        loop = asyncio.get_running_loop()
        context = pki.client_ssl(["http/1.1"])
        slow = WireClient("slow", b"-", hello=False)
        await loop.create_connection(
            lambda: slow, HOST, main.port, ssl=context, server_hostname=HOST
        )
        assert slow.transport is not None
        slow.send_raw(b"GET /live HTTP/1.1\r\nHost: 127.0.0.1\r\n")

        async def drip() -> None:
            while not slow.eof:
                slow.send_raw(b"X-A: b\r\n")
                await asyncio.sleep(0.05)

        dripping = asyncio.create_task(drip())
        try:
            await slow.closed_by_server()
        finally:
            dripping.cancel()
        assert b"101" not in bytes(slow.raw)
        await chat_round_trip(ana, "after the loris")


def _bad_messages() -> dict[str, tuple[bytes | str, int]]:
    chat = pack_frame(Channel.CONTROL, 7, b"\x91\x01")  # a Ping, well formed
    return {
        "text": ("Hello", CloseCode.UNSUPPORTED_DATA),
        "garbage": (b"GET / HTTP/1.1\r\n\r\n", CloseCode.POLICY_VIOLATION),
        "short": (b"\x01\x00", CloseCode.POLICY_VIOLATION),
        "two frames": (chat + chat, CloseCode.POLICY_VIOLATION),
        "cut frame": (chat[:-1], CloseCode.POLICY_VIOLATION),
        "bad msgpack": (pack_frame(Channel.CONTROL, 1, b"\xc1\xc1"), CloseCode.POLICY_VIOLATION),
        "too big": (b"\x01\x02\x00\x00" + b"\x00" * (300 * 1024), CloseCode.MESSAGE_TOO_BIG),
    }


@pytest.mark.parametrize("case", list(_bad_messages()))
async def test_a_bad_message_closes_only_that_websocket_with_its_code(
    pki: Pki, issuer: Center, case: str
) -> None:
    message, code = _bad_messages()[case]
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        bad = await connect_ws(main.port, pki, "bad", sealed(issuer, "bo"), hello=False)
        await bad.wait_for(lambda: bad.accepted, "the upgrade")
        bad.send_message(message)
        await bad.refused()
        assert bad.close_code == code, (bad.close_code, bad.close_reason)
        await chat_round_trip(ana, f"after {case}")
        assert main.counters().connections == 1


async def test_a_bad_message_after_joining_closes_that_browser_alone(
    pki: Pki, issuer: Center
) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        bo = await join_ws(main.port, pki, "bo", sealed(issuer, "bo"))
        await ana.wait_for(lambda: "bo" in ana.roster, "bo joined")
        bo.send_message("not binary")
        await bo.refused()
        assert bo.close_code == CloseCode.UNSUPPORTED_DATA
        await ana.wait_for(lambda: "bo" not in ana.roster, "bo gone")
        await chat_round_trip(ana, "carry on")


async def test_a_tampered_ticket_gets_auth_failed_and_close_4401(pki: Pki, issuer: Center) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        ticket = bytearray(sealed(issuer, "bo"))
        ticket[-5] ^= 0x01
        bo = await connect_ws(main.port, pki, "bo", bytes(ticket))
        await bo.refused()
        await bo.wait_for(lambda: bo.close_code is not None, "the close frame")
        assert isinstance(bo.auth, AuthFailed) and bo.auth.reason is AuthFailure.BAD_TICKET
        assert bo.close_code == CloseCode.AUTH_FAILED
        await chat_round_trip(ana, "no intruder")
        assert set(ana.roster) == {"ana"}


async def test_a_silent_websocket_gets_bye_handshake_timeout_and_1008(
    pki: Pki, issuer: Center
) -> None:
    async with browser_server(pki, wire_settings=Settings(handshake_timeout=0.5)) as main:
        assign_main(main, issuer)
        quiet = await connect_ws(main.port, pki, "quiet", auto_auth=False)
        await quiet.refused()
        await quiet.wait_for(lambda: quiet.close_code is not None, "the close frame")
        assert quiet.closed is not None and quiet.closed.reason is ByeReason.HANDSHAKE_TIMEOUT
        assert quiet.close_code == CloseCode.POLICY_VIOLATION


def test_origins_are_compared_as_browsers_send_them() -> None:
    assert origin_of("https://Center.Example:443/events/") == "https://center.example"
    assert origin_of("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    with pytest.raises(ValueError):
        origin_of("center.example")


async def test_a_browser_viewer_asks_for_a_key_frame_and_gets_one(pki: Pki, issuer: Center) -> None:
    async with browser_server(pki) as main:
        assign_main(main, issuer)
        ana = await joined(main.port, pki.client_ssl(), "ana", sealed(issuer, "ana"))
        ana.send(TakeFloor())
        ana.open_stream(Codec.VP8)
        await ana.wait_for(lambda: ana.my_stream(Codec.VP8) is not None, "ana's video stream")
        stream = ana.my_stream(Codec.VP8)
        assert stream is not None
        bo = await join_ws(main.port, pki, "bo", sealed(issuer, "bo"))  # joins late
        assert stream in bo.streams
        bo.send(RequestKeyFrame(stream_id=stream))
        await ana.wait_for(
            lambda: any(isinstance(m, RequestKeyFrame) for m in ana.messages), "the request"
        )
        ana.send(
            MediaFrame.build(
                Channel.VIDEO,
                stream_id=stream,
                seq=0,
                timestamp_us=0,
                payload=b"k" * 500,
                keyframe=True,
            )
        )
        await bo.wait_for(lambda: bool(bo.media), "the key frame")
        assert bo.media[0].keyframe and bo.media[0].stream_id == stream
